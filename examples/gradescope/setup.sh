#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image (Ubuntu, as root), from the
# autograder zip unpacked in /autograder/source: the zip holds this file, run_autograder,
# suite.toml with the scenarios it names, and labrun's source in labrun/.
set -euo pipefail

apt-get update
# python3 runs the students' lab programs; bubblewrap is labrun's sandbox (where the
# container allows it: where it does not, labrun grades without it and says so).
apt-get install -y --no-install-recommends python3 bubblewrap build-essential curl ca-certificates

# labrun, built from the source in the zip with a current stable Rust.
curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
"$HOME/.cargo/bin/cargo" install --locked --path /autograder/source/labrun --root /usr/local
labrun --version
