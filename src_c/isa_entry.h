/* The table of one ISA copy's entry points (isa.h): a field per public
 * kernel-side function, listed once here. */
#ifndef FL_ISA_ENTRY_H
#define FL_ISA_ENTRY_H

#include "fastloss.h"
#include "rows.h"

#define FL_ISA_ENTRIES(X)                                                    \
    X(ew_run, fl_ew_run)                                                     \
    X(ew_kernel_name, fl_ew_kernel_name)                                     \
    X(ew_kernel_nd, fl_ew_kernel_nd)                                         \
    X(ew_run_signs, fl_ew_run_signs)                                         \
    X(cls_prepass, fl_cls_prepass)                                           \
    X(cls_run, fl_cls_run)                                                   \
    X(row_run, fl_row_run)                                                   \
    X(row_kernel_name, fl_row_kernel_name)                                   \
    X(row_kernel_inputs, fl_row_kernel_inputs)                               \
    X(row_kernel_labels, fl_row_kernel_labels)                               \
    X(outside_typed, fl_outside_typed)                                       \
    X(labels_i64, fl_labels_i64)                                             \
    X(f32_to_f16, fl_f32_to_f16)                                             \
    X(f16_to_f32, fl_f16_to_f32)                                             \
    X(sum_typed, fl_sum_typed)                                               \
    X(outside_f32, fl_outside_f32)                                           \
    X(outside_f64, fl_outside_f64)                                           \
    X(notin_f32, fl_notin_f32)                                               \
    X(notin_f64, fl_notin_f64)                                               \
    X(probe_f32, fl_probe_f32)                                               \
    X(probe_f64, fl_probe_f64)

#define FL_ISA_ENTRY_FIELD(field, fn) __typeof__(fn) *field;
typedef struct {
    const char *name;          /* "avx512", "avx2", "sse2", "neon", "generic" */
    const char *hand_loops;    /* the hand-vectorized loops' vector ISA, or NULL */
    FL_ISA_ENTRIES(FL_ISA_ENTRY_FIELD)
} fl_isa_table;

#endif
