# shellcheck shell=bash
# Sourced by the bench scripts: appends one dated section to benches/RESULTS.md.
#   append_results ROOT STARTED TITLE COMMAND MACHINE TABLE NOTES
# Creates the file with its heading first if it does not exist yet.
append_results() {
    local results="$1/benches/RESULTS.md"
    if [[ ! -e $results ]]; then
        printf '%s\n\n%s\n' "# Benchmark results" \
            "Appended by the scripts in this folder when run with \`--record\`; newest last." >"$results"
    fi
    {
        echo
        echo "## $2 — $3"
        echo
        echo "Command: \`$4\`"
        echo
        echo "$5"
        echo
        echo "$6"
        echo
        echo "$7"
    } >>"$results"
    echo >&2
    echo "appended to benches/RESULTS.md" >&2
}
