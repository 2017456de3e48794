/**
 * Ctrl-C or SIGTERM: run `stop` (stop every process the script started, by PID) and exit with
 * 128 + the signal number. An 'exit' handler cannot wait for anything, so this is the only
 * place an interrupted run can clean up.
 */
export function stopOnSignals(stop: () => Promise<unknown>): void {
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping everything this run started\n`);
      void stop()
        .catch((err: unknown) => process.stderr.write(`while stopping: ${String(err)}\n`))
        .finally(() => process.exit(code));
    });
  }
}
