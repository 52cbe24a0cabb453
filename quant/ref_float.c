/* ref_float.c - scalar reference for the float formats F32, F16, BF16. */
#include "types.h"

#include <string.h>

void mr_f32_to_f32(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void mr_f32_row_to_f32(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void mr_f16_row_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = mr_f16_to_f32(h);
    }
}

void mr_bf16_row_to_f32(const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = mr_bf16_to_f32(h);
    }
}

void mr_f32_row_to_f16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = mr_f32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void mr_f32_row_to_bf16(const float *src, void *dst, int64_t n)
{
    uint8_t *p = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = mr_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* Dot products accumulate in blocks of 32 into a float, then sum the block
 * results, the order the SIMD kernels reproduce up to reassociation. */
float mr_dot_f32_f32(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        sum += v * x[i];
    }
    return sum;
}

float mr_dot_f16_f32(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        sum += mr_f16_to_f32(h) * x[i];
    }
    return sum;
}

float mr_dot_bf16_f32(const void *w, const float *x, int64_t n)
{
    const uint8_t *p = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        sum += mr_bf16_to_f32(h) * x[i];
    }
    return sum;
}
