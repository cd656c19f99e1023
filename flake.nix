# libnix for people who live in Nix: a development shell and the `cargo nix` package.
#
# Untested: no nixpkgs was reachable where this was written; CI only checks that this file
# parses (`nix-instantiate --parse flake.nix`). See README, "Using Nix flakes".
{
  description = "libnix: drive the Nix store from Rust in-process; `cargo nix` builds cargo's unit graph as one Nix derivation per unit";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The Nix whose C API (nix-util-c, nix-store-c, nix-expr-c, nix-main-c) nix-sys binds.
      # nix-sys supports Nix 2.26 to 2.35 (see README, "Supported Nix versions"); 2.26 is the
      # series CI tests, so it comes first. The first of these attributes that this nixpkgs
      # has is used; there is no fallback to `nixVersions.stable` or `pkgs.nix`, and a Nix
      # outside the range stops evaluation with its version named.
      supportedNixAttrs = [
        "nix_2_26"
        "nix_2_28"
        "nix_2_29"
        "nix_2_30"
        "nix_2_31"
        "nix_2_32"
        "nix_2_33"
        "nix_2_34"
        "nix_2_35"
      ];
      nixFor =
        pkgs:
        let
          lib = nixpkgs.lib;
          attr = lib.findFirst (a: pkgs.nixVersions ? ${a}) null supportedNixAttrs;
          nix =
            if attr == null then
              throw "libnix: this nixpkgs has none of nixVersions.{${lib.concatStringsSep "," supportedNixAttrs}}; nix-sys supports Nix 2.26 to 2.35"
            else
              pkgs.nixVersions.${attr};
        in
        if lib.versionAtLeast nix.version "2.26" && lib.versionOlder nix.version "2.36" then
          nix
        else
          throw "libnix: nixVersions.${attr} is Nix ${nix.version}; nix-sys supports Nix 2.26 to 2.35";
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          nix = nixFor pkgs;
        in
        rec {
          # `cargo-nix` and its unit builder `cargo-nix-unit`, installed side by side in
          # $out/bin (cargo-nix looks for the builder next to itself).
          cargo-nix = pkgs.rustPlatform.buildRustPackage {
            pname = "cargo-nix";
            version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).workspace.package.version;
            src = pkgs.lib.cleanSourceWith {
              src = self;
              filter = path: type: !(type == "directory" && baseNameOf path == "target");
            };
            cargoLock.lockFile = ./Cargo.lock;
            cargoBuildFlags = [
              "-p"
              "cargo-nix"
              "-p"
              "cargo-nix-unit"
              "--bins"
            ];
            nativeBuildInputs = [
              pkgs.pkg-config
              pkgs.rustPlatform.bindgenHook # libclang for nix-sys's bindgen
            ];
            buildInputs = [
              nix
              (pkgs.lib.getDev nix) # the C API's headers and pkg-config files
              # the `cargo` crate cargo-nix plans with: its curl, OpenSSL and zlib come from
              # the system (libgit2, libssh2 and sqlite are built from bundled sources)
              pkgs.curl
              pkgs.openssl
              pkgs.zlib
            ];
            # The tests need a writable store without a sandbox, a Rust toolchain and sshd.
            doCheck = false;
            meta = {
              description = "Build cargo workspaces as one Nix derivation per unit, in-process";
              homepage = "https://github.com/libnix/libnix";
              license = pkgs.lib.licenses.lgpl21Plus;
              mainProgram = "cargo-nix";
            };
          };
          default = cargo-nix;
        }
      );

      devShells = forAllSystems (
        pkgs:
        let
          nix = nixFor pkgs;
        in
        {
          default = pkgs.mkShell {
            packages = [
              nix
              (pkgs.lib.getDev nix)
              pkgs.pkg-config
              pkgs.rustPlatform.bindgenHook
              pkgs.rustc
              pkgs.cargo
              pkgs.clippy
              pkgs.rustfmt
              pkgs.openssh # tests/remote.rs starts its own sshd
            ];
          };
        }
      );
    };
}
