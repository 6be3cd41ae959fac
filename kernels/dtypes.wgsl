// The dtype codes 32-bit-word kernels read through their A_DT / OUT_DT override constants (include-only). f16 has no
// code: it is packed two to a word, and these kernels refuse it (kernels that read it say so themselves).
const DT_F32: u32 = 0u;
const DT_I32: u32 = 1u;
const DT_BOOL: u32 = 2u;
