/* test_finite.c - NaN and infinity never turn into silent output:
 * mr_check_finite names the first bad value, the Q4_0/Q8_0 references
 * have defined results on them (run under UBSan), and quantize refuses a
 * checkpoint with a non-finite weight, naming the tensor and the element,
 * and leaves no file.  Needs no test data. */
#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"
#include "finite.h"
#include "hf_builder.h"
#include "safetensors.h"
#include "types.h"

START_TEST(check_finite_names_the_first_bad_value)
{
    float x[64];
    mr_error err;
    for (int i = 0; i < 64; i++)
        x[i] = (float)i - 32.0f;
    x[0] = 3.4e38f; /* large but finite */
    ck_assert_uint_eq(mr_first_nonfinite(x, 64), 64);
    ck_assert_int_eq(mr_check_finite(x, 64, "logits", &err), MR_OK);
    ck_assert_int_eq(mr_check_finite(x, 0, "logits", &err), MR_OK);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *word[3] = {"NaN", "+inf", "-inf"};
    for (int k = 0; k < 3; k++) {
        x[41] = bad[k];
        x[50] = NAN;
        ck_assert_uint_eq(mr_first_nonfinite(x, 64), 41);
        ck_assert_int_eq(mr_check_finite(x, 64, "logits of token 3", &err), MR_EFORMAT);
        ck_assert_msg(strstr(err.msg, "logits of token 3") && strstr(err.msg, "value 41 of 64") &&
                      strstr(err.msg, word[k]), "message: %s", err.msg);
        x[41] = 0.0f;
        x[50] = 0.0f;
    }
}
END_TEST

/* A NaN in a block must give the same bytes every time (no undefined
 * cast), and the finite neighbours' blocks must not change. */
START_TEST(reference_quantizers_define_nan)
{
    const uint32_t types[] = {MR_TYPE_Q4_0, MR_TYPE_Q8_0};
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = sinf((float)i);
    for (size_t k = 0; k < 2; k++) {
        const mr_type_traits *ti = mr_type_get(types[k]);
        uint8_t clean[256], a[256], b[256];
        ti->from_f32(x, clean, 64);
        float y[64];
        memcpy(y, x, sizeof y);
        y[40] = NAN;
        ti->from_f32(y, a, 64);
        ti->from_f32(y, b, 64);
        size_t row = mr_type_row_bytes(types[k], 64), half = row / 2;
        ck_assert(memcmp(a, b, row) == 0);
        ck_assert_msg(memcmp(a, clean, half) == 0, "%s: the first block changed", ti->name);
    }
}
END_TEST

/* Overwrite one BF16 value of a tensor in a safetensors file. */
static void poke_bf16(const char *file, const char *tensor, uint64_t index, uint16_t bits)
{
    mr_st_file *f;
    mr_error err;
    ck_assert_msg(mr_st_open(file, &f, &err) == MR_OK, "%s", err.msg);
    const mr_st_tensor *t = mr_st_find(f, tensor);
    ck_assert_ptr_nonnull(t);
    ck_assert(t->dtype == MR_ST_BF16 && index < mr_st_nelements(t));
    uint8_t b[2] = {(uint8_t)bits, (uint8_t)(bits >> 8)};
    int fd = open(file, O_WRONLY);
    ck_assert(fd >= 0 && pwrite(fd, b, 2, (off_t)(t->offset + 2 * index)) == 2);
    close(fd);
    mr_st_close(f);
}

START_TEST(quantize_refuses_non_finite_weights)
{
    static const char *const types[] = {"q8_0", "q4_0", "q4_k", "f16"};
    static const uint16_t bits[] = {0x7fc0 /* NaN */, 0x7f80 /* +inf */, 0xff80, 0x7fc0};
    const char *type = types[_i];
    char *in = hfb_tmpdir(), *out = hfb_tmpdir();
    hfb_model_opts mo = {0};
    ck_assert_int_eq(hfb_write_model(in, &mo), 0);
    char path[512], dst[512];
    snprintf(path, sizeof path, "%s/model.safetensors", in);
    /* row 5, column 7 of layer 1's q_proj: a tensor the Q/K permutation
     * moves, so the message must name the source row, not the output's */
    poke_bf16(path, "model.layers.1.self_attn.q_proj.weight", 5 * HFB_EMBD + 7, bits[_i]);
    snprintf(dst, sizeof dst, "%s/out.gguf", out);
    mr_convert_opts o = {0};
    o.input_dir = in;
    o.output_path = dst;
    o.type = type;
    o.threads = 2;
    mr_error err;
    ck_assert_int_eq(mr_convert(&o, NULL, &err), MR_EFORMAT);
    printf("%s: %s\n", type, err.msg);
    ck_assert_msg(strstr(err.msg, "model.layers.1.self_attn.q_proj.weight") &&
                  strstr(err.msg, "element [5, 7]") && strstr(err.msg, "non-finite"),
                  "%s: %s", type, err.msg);
    ck_assert_int_eq(hfb_dir_entries(out), 0);
    hfb_rmdir(in);
    hfb_rmdir(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("finite");
    TCase *tc = tcase_create("finite");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, check_finite_names_the_first_bad_value);
    tcase_add_test(tc, reference_quantizers_define_nan);
    tcase_add_loop_test(tc, quantize_refuses_non_finite_weights, 0, 4);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
