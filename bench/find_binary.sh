# Sourced by the scripts in bench/: sets `bin` to the neuralrg-gpu binary, from NEURALRG_GPU,
# else the repository's release build, else neuralrg-gpu on PATH, or stops with what to do.
# Needs `repo` (the repository root); $1 names the calling script in the message.
bin=${NEURALRG_GPU:-$repo/target/release/neuralrg-gpu}
if [[ ! -x $bin ]]; then
    if [[ -z ${NEURALRG_GPU:-} ]] && command -v neuralrg-gpu >/dev/null; then
        bin=$(command -v neuralrg-gpu)
    else
        echo "$1: no neuralrg-gpu binary at $bin (cargo build --release, or set NEURALRG_GPU)" >&2
        exit 1
    fi
fi
