"""The environment the benchmark scripts run cargo and cargo nix in: `scripts/setup-nix`'s
exports (building Nix first if needed) and the test settings (no sandbox, no build users, no
build hook or substituters)."""
import os, subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "sandbox = false\nbuild-users-group =\nbuild-hook =\nsubstituters =\n"


def nix_env(extra_config=""):
    lines = subprocess.run([os.path.join(ROOT, "scripts/setup-nix")], check=True, capture_output=True, text=True).stdout
    env = dict(os.environ)
    for line in lines.splitlines():
        k, v = line.removeprefix("export ").split("=", 1)
        env[k] = subprocess.run(["bash", "-c", f"echo {v}"], env=env, capture_output=True, text=True).stdout.strip()
    env["NIX_CONFIG"] = CONFIG + extra_config
    return env
