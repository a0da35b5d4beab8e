#include <stdio.h>
#include <pthread.h>
#include <unistd.h>
struct rec { long pad; long val; };
__attribute__((noinline)) long parse(struct rec *r) { return r->val; }
void *idle(void *p) { (void)p; for (;;) pause(); return 0; }
int main(void) {
    pthread_t t; pthread_create(&t, 0, idle, 0); usleep(100000);
    struct rec *volatile r = 0; printf("%ld\n", parse(r)); return 0; }
