#!/usr/bin/env bash
# The main job: one buffer travels through every ecosystem with the same address.
source "$(dirname "$0")/env.sh"
cargo run --quiet --example tour --features ndarray,arrow,tch
