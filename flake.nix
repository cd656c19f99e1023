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

      # The Nix whose C API (nix-util-c, nix-store-c, nix-expr-c) nix-sys binds: 2.26 is the
      # tested series (see README, "Supported Nix versions"); a nixpkgs without it falls back
      # to its stable Nix, which nix-sys accepts (>= 2.26) but which is untested.
      nixFor = pkgs: pkgs.nixVersions.nix_2_26 or pkgs.nixVersions.stable;
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
