/* matmul.c - the matrix-multiplication driver: prepare activations once,
 * then hand a range of weight rows to the type's gemm kernel (or to a loop
 * of single dots when the ISA has none).  Threads split the rows; this
 * file knows nothing of them. */
#include "kernels.h"

size_t mr_act_row_bytes(const mr_kernels *k, uint32_t wtype, int64_t n)
{
    uint32_t at = k->act_type[wtype];
    if (at == MR_TYPE_F32)
        return (size_t)n * sizeof(float);
    return (size_t)mr_type_row_bytes(at, (uint64_t)n);
}

const void *mr_act_prepare(const mr_kernels *k, uint32_t wtype, const float *x, int64_t n,
                           int64_t n_tok, void *buf)
{
    uint32_t at = k->act_type[wtype];
    if (at == MR_TYPE_F32)
        return x;
    size_t rb = mr_act_row_bytes(k, wtype, n);
    for (int64_t t = 0; t < n_tok; t++)
        k->quantize_act[at](x + t * n, (uint8_t *)buf + (size_t)t * rb, n);
    return buf;
}

void mr_matmul_rows(const mr_kernels *k, uint32_t wtype, const void *w, size_t row_bytes,
                    const void *act, int64_t n, int64_t n_tok, float *y, int64_t ldy,
                    int64_t r0, int64_t r1)
{
    const size_t ab = mr_act_row_bytes(k, wtype, n);
    if (k->gemm[wtype] && k->act_type[wtype] != MR_TYPE_F32) {
        k->gemm[wtype](w, row_bytes, act, ab, n, n_tok, y, ldy, r0, r1);
        return;
    }
    const uint8_t *wr = (const uint8_t *)w + (size_t)r0 * row_bytes;
    if (k->act_type[wtype] == MR_TYPE_F32) {
        mr_dot_f32_fn dot = k->dot_f32[wtype];
        for (int64_t r = r0; r < r1; r++, wr += row_bytes)
            for (int64_t t = 0; t < n_tok; t++)
                y[t * ldy + r] = dot(wr, (const float *)act + t * n, n);
        return;
    }
    mr_vec_dot_fn dot = k->vec_dot[wtype];
    for (int64_t r = r0; r < r1; r++, wr += row_bytes)
        for (int64_t t = 0; t < n_tok; t++)
            y[t * ldy + r] = dot(wr, (const uint8_t *)act + (size_t)t * ab, n);
}

int mr_can_pack(const mr_kernels *k, uint32_t t, int64_t rows, int64_t n)
{
    if (t >= MR_TYPE_COUNT || !k->repack[t] || !k->gemm_packed[t] || k->act_type[t] == MR_TYPE_F32)
        return 0;
    const uint32_t bs = mr_type_get(t)->block_size;
    return rows > 0 && rows % MR_PACK_ROWS == 0 && n > 0 && bs && n % bs == 0;
}

size_t mr_pack_row_bytes(const mr_kernels *k, uint32_t t, int64_t n)
{
    return (size_t)(n / mr_type_get(t)->block_size) * k->pack_block_bytes[t];
}

void mr_matmul_rows_packed(const mr_kernels *k, uint32_t wtype, const void *w, const void *act,
                           int64_t n, int64_t n_tok, float *y, int64_t ldy, int64_t r0,
                           int64_t r1)
{
    k->gemm_packed[wtype](w, mr_pack_row_bytes(k, wtype, n), act, mr_act_row_bytes(k, wtype, n), n,
                          n_tok, y, ldy, r0, r1);
}
