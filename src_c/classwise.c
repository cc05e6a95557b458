/* The class-axis family: cross_entropy, nll, multi_margin.
 * The driver (class_template.h) is instantiated for float and double. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fl_internal.h"
#include "vmath.h"

#define T float
#define SFX(n) n##_f32
#define VM(fn) fl_##fn##f
#include "class_template.h"
#undef T
#undef SFX
#undef VM

#define T double
#define SFX(n) n##_f64
#define VM(fn) fl_##fn
#include "class_template.h"
#undef T
#undef SFX
#undef VM

fl_idx fl_cls_prepass(int dtype, const fl_cls_args *a, double *wsum)
{
    *wsum = 0.0;
    if (!a->y) return -1;
    return dtype == FL_F32 ? cls_prepass_f32(a, wsum) : cls_prepass_f64(a, wsum);
}

double fl_cls_run(int dtype, int kernel, const fl_cls_args *a, int nthreads, int *status)
{
    return dtype == FL_F32 ? cls_run_f32(kernel, a, nthreads, status)
                           : cls_run_f64(kernel, a, nthreads, status);
}
