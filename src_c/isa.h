/* ISA levels (SPEC section 9).
 *
 * The kernel sources (FL_ISA_SOURCES in setup.py: the three family drivers,
 * the hand-vectorized loops, the checks and conversions) are compiled once
 * per ISA level, each copy with that level's compiler flags and
 * -DFL_ISA=<level>:
 *
 *   level     x86-64 flags          hand-vectorized loops
 *   avx512    -march=x86-64-v4      512-bit (AVX-512F/DQ/BW/VL)
 *   avx2      -march=x86-64-v3      256-bit (AVX2 + FMA)
 *   sse2      (baseline x86-64)     128-bit (SSE2)
 *   neon      (baseline aarch64)    128-bit (NEON)
 *   generic   (other targets)       none
 *
 * In a copy, every function the copy exports is renamed name -> name_<level>
 * (the list below; included by fastloss.h before its declarations), and
 * isa_table.c collects the copy's entry points into one fl_isa_table.
 * dispatch.c (compiled once, baseline flags) defines the public names as
 * forwarders through the table chosen at import: FASTLOSS_SIMD, or the best
 * level the CPU runs.  The "portable" level is the baseline copy with its
 * hand-vectorized loops switched off (fl_simd_loops_set): plain C loops,
 * vectorized by the compiler at the baseline width.  A function missing from
 * the list is a duplicate symbol at link time, so the list cannot silently
 * fall behind. */
#ifndef FL_ISA_H
#define FL_ISA_H

#ifdef FL_ISA
#define FL_ISA_CAT2(a, b) a##_##b
#define FL_ISA_CAT(a, b) FL_ISA_CAT2(a, b)
#define FL_ISA_SYM(name) FL_ISA_CAT(name, FL_ISA)
#define FL_ISA_STR2(x) #x
#define FL_ISA_STR(x) FL_ISA_STR2(x)

/* the copy's exported functions */
#define fl_ew_run                 FL_ISA_SYM(fl_ew_run)
#define fl_ew_kernel_name         FL_ISA_SYM(fl_ew_kernel_name)
#define fl_ew_kernel_nd           FL_ISA_SYM(fl_ew_kernel_nd)
#define fl_ew_run_signs           FL_ISA_SYM(fl_ew_run_signs)
#define fl_cls_prepass            FL_ISA_SYM(fl_cls_prepass)
#define fl_cls_run                FL_ISA_SYM(fl_cls_run)
#define fl_row_run                FL_ISA_SYM(fl_row_run)
#define fl_row_kernel_name        FL_ISA_SYM(fl_row_kernel_name)
#define fl_row_kernel_inputs      FL_ISA_SYM(fl_row_kernel_inputs)
#define fl_row_kernel_labels      FL_ISA_SYM(fl_row_kernel_labels)
#define fl_outside_typed          FL_ISA_SYM(fl_outside_typed)
#define fl_labels_i64             FL_ISA_SYM(fl_labels_i64)
#define fl_f32_to_f16             FL_ISA_SYM(fl_f32_to_f16)
#define fl_f16_to_f32             FL_ISA_SYM(fl_f16_to_f32)
#define fl_sum_typed              FL_ISA_SYM(fl_sum_typed)
#define fl_outside_f32            FL_ISA_SYM(fl_outside_f32)
#define fl_outside_f64            FL_ISA_SYM(fl_outside_f64)
#define fl_notin_f32              FL_ISA_SYM(fl_notin_f32)
#define fl_notin_f64              FL_ISA_SYM(fl_notin_f64)
#define fl_probe_f32              FL_ISA_SYM(fl_probe_f32)
#define fl_probe_f64              FL_ISA_SYM(fl_probe_f64)
/* internal to a copy (the hand-vectorized loops) */
#define fl_simd_loops_isa         FL_ISA_SYM(fl_simd_loops_isa)
#define fl_ce_cols_f32_simd       FL_ISA_SYM(fl_ce_cols_f32_simd)
#define fl_ce_scale_f32_simd      FL_ISA_SYM(fl_ce_scale_f32_simd)
#define fl_ce_scale_f64_simd      FL_ISA_SYM(fl_ce_scale_f64_simd)
#define fl_ce_seg_a_f32_simd      FL_ISA_SYM(fl_ce_seg_a_f32_simd)
#define fl_ce_seg_a_f64_simd      FL_ISA_SYM(fl_ce_seg_a_f64_simd)
#define fl_margin_rows_f32_simd   FL_ISA_SYM(fl_margin_rows_f32_simd)
#define fl_zero_stream_simd       FL_ISA_SYM(fl_zero_stream_simd)
#endif /* FL_ISA */

#endif /* FL_ISA_H */
