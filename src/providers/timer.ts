/**
 * Guards one streamed call: aborts the HTTP request when the caller aborts or when no text has arrived
 * within the first-token timeout (so a hung provider stops generating, and billing, at once), and keeps
 * errors thrown by the caller's own delta callback apart from the provider's.
 */
export interface FirstTokenTimer {
  readonly signal: AbortSignal;
  readonly timedOut: boolean;
  firstTokenArrived(): void;
  /** Runs the caller's callback; an error it throws is remembered and rethrown unchanged. */
  deliver(callback: () => void): void;
  /** Throws the caller's own error, if its callback threw (a bug of ours, not a provider failure). */
  rethrowCallerError(): void;
  stop(): void;
}

export function startFirstTokenTimer(
  callerSignal: AbortSignal | undefined,
  timeoutMs: number,
): FirstTokenTimer {
  const controller = new AbortController();
  let timedOut = false;
  let callerError: { error: unknown } | undefined;
  const onCallerAbort = () => controller.abort(callerSignal?.reason);
  if (callerSignal?.aborted) controller.abort(callerSignal.reason);
  else callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
  let timer: NodeJS.Timeout | undefined = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`no first token within ${timeoutMs} ms`));
  }, timeoutMs);
  const clear = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    firstTokenArrived: clear,
    deliver(callback) {
      // After the callback failed once, the chunks still buffered are not delivered: the turn is over.
      if (callerError) return;
      try {
        callback();
      } catch (error) {
        callerError = { error };
        controller.abort(error);
      }
    },
    rethrowCallerError() {
      if (callerError) throw callerError.error;
    },
    stop() {
      clear();
      callerSignal?.removeEventListener('abort', onCallerAbort);
    },
  };
}
