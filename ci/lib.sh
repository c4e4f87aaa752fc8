#!/usr/bin/env bash
# What the ci/ scripts share: building the `concbench` binary of another commit.
#
#   source ci/lib.sh
#   build_ref REF OUT_BINARY [PATCH_COMMAND]
#
# checks REF out into a temporary git worktree, runs PATCH_COMMAND there (if given;
# for experiments that change the code on purpose), builds it in release mode into a
# target directory shared by every such build (so dependencies compile once), copies
# the binary to OUT_BINARY and removes the worktree. The worktree is removed also when
# the build fails.
#
# Every build here gets the same code-layout flag (functions on 64-byte boundaries, see
# .cargo/config.toml), whatever the commit's own config says (an older base may predate
# it) and whatever RUSTFLAGS the caller set (which would replace the config's flags):
# two builds compared with different layouts differ by more than most changes do.

LAYOUT_FLAG="-C llvm-args=-align-all-functions=6"

# RUSTFLAGS as the caller set them, with the layout flag added if it is missing.
# LAYOUT=plain leaves it out (and, RUSTFLAGS being set, overrides the config's too): for
# the experiment that shows what the flag is for (reports/2026-12-02-vm/layout.md).
layout_rustflags() {
    if [[ ${LAYOUT:-aligned} == plain ]]; then
        echo "${RUSTFLAGS:-}"
        return
    fi
    case " ${RUSTFLAGS:-} " in
        *" $LAYOUT_FLAG "*) echo "$RUSTFLAGS" ;;
        *) echo "${RUSTFLAGS:+$RUSTFLAGS }$LAYOUT_FLAG" ;;
    esac
}

build_ref() {
    local ref=$1 out=$2 patch=${3:-}
    local root worktree status=0
    root=$(git rev-parse --show-toplevel)
    worktree=$(mktemp -d "${TMPDIR:-/tmp}/concbench-build.XXXXXX")
    git -C "$root" worktree add --detach "$worktree" "$ref" >/dev/null
    (
        cd "$worktree"
        if [[ -n $patch ]]; then
            bash -c "$patch"
        fi
        RUSTFLAGS="$(layout_rustflags)" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}/worktrees" \
            cargo build --quiet --release --bin concbench
        cp "${CARGO_TARGET_DIR:-$root/target}/worktrees/release/concbench" "$out"
    ) || status=$?
    git -C "$root" worktree remove --force "$worktree" 2>/dev/null || rm -rf "$worktree"
    git -C "$root" worktree prune
    return "$status"
}
