#!/usr/bin/env bash
# The io_uring styles beside tokio and evloop, on this machine, from one clean commit.
set -u
cd /work/main
export CARGO_TARGET_DIR=/work/main/target
cargo build --release -q || exit 1
[[ -z $(git status --porcelain --untracked-files=no) ]] || echo "warning: dirty tree"
cb=$PWD/target/release/concbench
export CARGO_TARGET_DIR=/tmp/iou
rm -rf /tmp/iou /tmp/iou-reports
mkdir -p /tmp/iou
servers=tokio,evloop,compio,compio-offload,monoio,monoio-offload,tokio-offload,evloop-offload
echo "== measure $(date -u +%T)"
"$cb" measure --groups cpu,tasks --styles tokio,evloop,compio,monoio,smol --workers 2 --budget 40 --seed 1204; echo "measure rc=$?"
echo "== beazley $(date -u +%T)"
"$cb" scenario beazley --styles "$servers" --workers 2 --peers none --no-redis --seed 1204; echo "beazley rc=$?"
echo "== tasks $(date -u +%T)"
"$cb" scenario tasks --styles tokio,compio,monoio,smol --sizes 1000,10000,100000; echo "tasks rc=$?"
echo "== connections $(date -u +%T)"
"$cb" scenario connections --styles "$servers" --peers none --counts 100,1000,10000; echo "connections rc=$?"
# (run after the others on 2026-12-04, at the next commit, before the report)
echo "== io $(date -u +%T)"
"$cb" scenario io --styles "$servers" --peers none --seed 1204; echo "io rc=$?"
echo "== report $(date -u +%T)"
"$cb" report --out /tmp/iou-reports; echo "report rc=$?"
echo "== end $(date -u +%T)"
