/**
 * REQUEST_GAP_MS (DESIGN §5): the minimum pause between the end of one upstream exchange and the next request, for
 * devices that drop requests that follow too closely. Shared by the dispatcher and the HTTP scheduler.
 */
export class RequestGap {
  private endedAt = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `resume` is called when a request refused by ready() may go. */
  constructor(
    private readonly gapMs: number,
    private readonly resume: () => void,
  ) {}

  get enabled(): boolean {
    return this.gapMs > 0;
  }

  exchangeEnded(): void {
    this.endedAt = performance.now();
  }

  /** Whether the next request may be sent now; if not, resume() runs once it may. */
  ready(): boolean {
    if (this.gapMs === 0) return true;
    const wait = this.endedAt + this.gapMs - performance.now();
    if (wait <= 0) return true;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.resume();
    }, Math.ceil(wait));
    return false;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
