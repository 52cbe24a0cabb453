/* cmd_serve.c - moerun serve (placeholder until the server lands). */
#include "cli.h"

int cmd_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_usage_error("serve", "not built yet");
}
