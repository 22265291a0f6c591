/* The floor of any process start: a static program that does nothing. The
 * bench (bench/shimbench) times it next to the hook, which is static too,
 * and registers it as a no-op OCI hook to measure what runc pays for
 * starting any hook at all. */
int main(void) { return 0; }
