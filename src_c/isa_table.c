/* One ISA copy's entry points (isa.h), collected for dispatch.c.  Compiled
 * once per level with the kernel sources. */
#include "fl_internal.h"
#include "ce_simd.h"
#include "rows.h"
#include "isa_entry.h"
#if FL_HAVE_SIMD_LOOPS
#include "simd.h"
#define FL_HAND_LOOPS FL_V_NAME
#else
#define FL_HAND_LOOPS NULL
#endif

#ifndef FL_ISA
#error "isa_table.c is compiled once per ISA level, with -DFL_ISA=<level>"
#endif

#define FL_ISA_ENTRY_INIT(field, fn) fn,
const fl_isa_table FL_ISA_SYM(fl_isa_table) = {
    FL_ISA_STR(FL_ISA),
    FL_HAND_LOOPS,
    FL_ISA_ENTRIES(FL_ISA_ENTRY_INIT)
};
