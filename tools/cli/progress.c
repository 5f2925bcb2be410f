/*
 * progress.c - see progress.h.  One drawing thread, woken by a condition
 * variable so that cli_progress_done returns at once.
 */
#include "progress.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    const char *label, *stage;
    double start;
    int running, shown;
} prog = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *draw(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&prog.lock);
    while (prog.running) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += 1;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&prog.wake, &prog.lock, &until);
        if (!prog.running)
            break;
        double el = now_s() - prog.start;
        if (el >= 1.0) {
            fprintf(stderr, "\r\033[K%s: %s ... (%.1f s)", prog.label,
                    prog.stage ? prog.stage : "working", el);
            fflush(stderr);
            prog.shown = 1;
        }
    }
    if (prog.shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        prog.shown = 0;
    }
    pthread_mutex_unlock(&prog.lock);
    return NULL;
}

void cli_progress_start(const char *label)
{
    if (prog.running || !isatty(STDERR_FILENO))
        return;
    pthread_mutex_lock(&prog.lock);
    prog.label = label;
    prog.stage = NULL;
    prog.start = now_s();
    prog.running = 1;
    pthread_mutex_unlock(&prog.lock);
    if (pthread_create(&prog.thread, NULL, draw, NULL) != 0)
        prog.running = 0; /* no line, but the work goes on */
}

void cli_progress(const char *stage)
{
    pthread_mutex_lock(&prog.lock);
    prog.stage = stage;
    pthread_mutex_unlock(&prog.lock);
}

void cli_progress_done(void)
{
    if (!prog.running)
        return;
    pthread_mutex_lock(&prog.lock);
    prog.running = 0;
    pthread_cond_signal(&prog.wake);
    pthread_mutex_unlock(&prog.lock);
    pthread_join(prog.thread, NULL);
}
