#!/usr/bin/env bash
# Proof that tools/sanitize.sh (make sanitize, CI) catches real bugs: inject
# a bug into a COPY of the kernels (never into the repository), run the
# sanitized tests, and require that the run FAILS with the expected report.
#
# Usage:  tools/sanitize_selftest.sh [case ...]     (or: make sanitize-selftest)
# Cases (default: all):
#   ew-write    the elementwise loop stores each gradient one element too far
#               (src_c/ew_template.h): the last store is past the output
#               -> "AddressSanitizer: heap-buffer-overflow ... WRITE of size"
#   class-read  off-by-one in cross_entropy's row maximum
#               (src_c/class_template.h): reads one logit past each row
#               -> "AddressSanitizer: heap-buffer-overflow ... READ of size"
#   gather      gathering a strided operand copies one element too many
#               (src_c/ew_template.h): a bug the plain test suite does NOT
#               notice -> "ERROR: AddressSanitizer"
#   ub-overflow a signed int overflow in the elementwise entry point
#               (src_c/elementwise.c) -> UBSan "runtime error: signed integer overflow"
# Each case is one sanitized build (about a minute) and a few tests.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(ew-write class-read gather ub-overflow)

status=0
for c in "${cases[@]}"; do
    # the bug: the first match of a regular expression in a kernel file is
    # rewritten (re.sub, one occurrence) in the sanitizer's copy
    case "$c" in
    ew-write)       # the gradient store g_[I] = ...  ->  g_[(I) + 1] = ...
        file=src_c/ew_template.h
        regex='\bg_\[I\] ='
        repl='g_[(I) + 1] ='
        tests=tests/test_elementwise.py; k=test_matches_reference
        expect='WRITE of size' ;;
    class-read)     # for (fl_idx c = 0; c < n; c++) m = max(m, z[c])  ->  c <= n
        file=src_c/class_template.h
        regex='for \(fl_idx (\w+) = 0; \1 < (\w+);'
        repl='for (fl_idx \1 = 0; \1 <= \2;'
        tests=tests/test_classes.py; k=test_code_paths_match_reference
        expect='READ of size' ;;
    gather)         # gathering a strided operand copies one element too many:
                    # reads past the row, writes past the 512-element buffer.
                    # The plain test suite passes with this bug.
        file=src_c/ew_template.h
        regex='for \(fl_idx (\w+) = 0; \1 < (\w+); \1\+\+\) buf\[\1\] = src\[\1 \* s\];'
        repl='for (fl_idx \1 = 0; \1 <= \2; \1++) buf[\1] = src[\1 * s];'
        tests=tests/test_elementwise.py; k="test_layouts_and_dtypes"
        expect='ERROR: AddressSanitizer' ;;
    ub-overflow)    # INT_MAX + ndim on entry to fl_ew_run
        file=src_c/elementwise.c
        regex='(double\s+fl_ew_run\s*\([^)]*\)\s*\{)'
        repl='\1 { volatile int big_ = __INT_MAX__; big_ = big_ + a->ndim; (void)big_; }'
        tests=tests/test_elementwise.py; k=test_matches_reference
        expect='runtime error: signed integer overflow' ;;
    *) echo "selftest: unknown case $c" >&2; exit 2 ;;
    esac
    inject='python3 -c "
import os, re, sys
f, rx, rp = (os.environ[k] for k in (\"INJ_FILE\", \"INJ_REGEX\", \"INJ_REPL\"))
src = open(f).read()
m = re.search(rx, src)
if m is None:
    sys.exit(f\"selftest: no match of {rx!r} in {f}: update tools/sanitize_selftest.sh\")
open(f, \"w\").write(src[:m.start()] + m.expand(rp) + src[m.end():])
print(f\"selftest: {f} line {src.count(chr(10), 0, m.start()) + 1} now reads: {m.expand(rp)}\")
"'
    echo "=== selftest $c: $file: /$regex/ -> '$repl'"
    log="$(mktemp)"
    INJ_FILE="$file" INJ_REGEX="$regex" INJ_REPL="$repl" SAN_INJECT="$inject" SAN_TESTS="$tests" SAN_KEEP=0 \
        "$ROOT/tools/sanitize.sh" -x -k "$k" >"$log" 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && grep -qF "$expect" "$log"; then
        echo "selftest $c: CAUGHT (sanitize.sh exit status $rc):"
        grep -E "ERROR: AddressSanitizer|runtime error:|$expect" "$log" | head -n 2 | uniq
        grep -m3 -E "^    #[0-9]+ .*(src_c|_core)" "$log" || true
        grep -m1 -E "^(SUMMARY|[0-9]+ (failed|passed))" "$log" || true
    else
        echo "selftest $c: NOT CAUGHT (exit status $rc); log follows" >&2
        tail -n 40 "$log" >&2
        status=1
    fi
    rm -f "$log"
done
exit $status
