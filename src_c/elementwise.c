/* The elementwise family: regression and binary losses.
 * The driver (ew_template.h) is instantiated for float and double; the
 * per-loss code is the scalar kernels of ew_kernels.h and the rows of
 * FL_EW_LOSSES in fastloss.h. */
#include <math.h>
#include <stdlib.h>

#include "fl_internal.h"
#include "vmath.h"

#define T double
#define SFX(n) n##_f64
#define VM(fn) fl_##fn
#define PRM prm_f64
#include "ew_template.h"
#undef T
#undef SFX
#undef VM
#undef PRM

#define T float
#define SFX(n) n##_f32
#define VM(fn) fl_##fn##f
#define PRM prm_f32
/* kernels that need more precision call the double ones */
#define FL_EW_WIDER(name) k_##name##_f64
#define FL_EW_WIDER_PRM prm_f64
#include "ew_template.h"
#undef T
#undef SFX
#undef VM
#undef PRM
#undef FL_EW_WIDER
#undef FL_EW_WIDER_PRM

double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                 const fl_ew_args *a, int nthreads)
{
    /* parameter values with a cheaper exact form */
    if (kernel == FL_EW_sigmoid_focal && prm->b == 2.0) kernel = FL_EW_sigmoid_focal_g2;
    return dtype == FL_F32 ? ew_run_f32(kernel, mode, prm, a, nthreads)
                           : ew_run_f64(kernel, mode, prm, a, nthreads);
}

const char *fl_ew_kernel_name(int k)
{
#define EW_NAME_ROW(NAME, AUX, HEAVY) #NAME,
    static const char *const names[FL_EW_NKERNELS] = { FL_EW_LOSSES(EW_NAME_ROW) };
#undef EW_NAME_ROW
    return (k >= 0 && k < FL_EW_NKERNELS) ? names[k] : "";
}
