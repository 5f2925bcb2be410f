/*
 * progress.h - the progress line of the stem tool: shown on stderr, only
 * when stderr is a terminal, once the work has lasted a second, refreshed
 * while it runs and erased when it ends.
 */
#ifndef STEM_CLI_PROGRESS_H
#define STEM_CLI_PROGRESS_H

/*
 * Start timing the work called label (a static string).  On a terminal a
 * background thread then redraws "label: stage ... (t s)" every quarter
 * second from the first second on.  Not nested: one at a time.
 */
void cli_progress_start(const char *label);

/* Name the stage now running (a static string). */
void cli_progress(const char *stage);

/* Stop the line and erase it; safe without a start. */
void cli_progress_done(void);

#endif /* STEM_CLI_PROGRESS_H */
