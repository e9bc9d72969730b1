/**
 * Faults a test switches on at run time. The broker reads these on every event, so a change takes
 * effect at once.
 */
export interface ServiceBusFaults {
  /** Destroys every open AMQP connection now (clients see a dropped socket and must reconnect). */
  dropConnections(): number;
  /** Answers the next `count` `$cbs` put-token requests with 401 (token refused). */
  refuseNextPutTokens(count: number): void;
  /** Put-token refusals still to come. */
  readonly putTokensToRefuse: number;
  /** Delays every acknowledgement (accepting a sent message, settling a disposition) by this many ms. */
  ackDelayMs: number;
  /** Acknowledgements received and held back by `ackDelayMs`, not answered yet. */
  readonly acksHeld: number;
  /**
   * Answers the next `count` entity creations (admin PUTs) 503 ServerBusy after `delayMs`, creating nothing
   * (the administration client retries them).
   */
  busyNextAdminWrites(count: number, delayMs?: number): void;
  /** Clears all faults. */
  reset(): void;
}

export class Faults implements ServiceBusFaults {
  ackDelayMs = 0;
  acksHeld = 0;
  private refusals = 0;
  private busyAdminWrites = 0;
  private busyAdminDelayMs = 0;

  constructor(private readonly drop: () => number) {}

  dropConnections(): number {
    return this.drop();
  }

  refuseNextPutTokens(count: number): void {
    if (!Number.isInteger(count) || count < 0)
      throw new Error(`refuseNextPutTokens: expected a count >= 0, got ${count}`);
    this.refusals = count;
  }

  get putTokensToRefuse(): number {
    return this.refusals;
  }

  /** Consumes one refusal; true when this put-token must be refused. */
  takePutTokenRefusal(): boolean {
    if (this.refusals <= 0) return false;
    this.refusals -= 1;
    return true;
  }

  busyNextAdminWrites(count: number, delayMs = 0): void {
    if (!Number.isInteger(count) || count < 0)
      throw new Error(`busyNextAdminWrites: expected a count >= 0, got ${count}`);
    this.busyAdminWrites = count;
    this.busyAdminDelayMs = delayMs;
  }

  /** Consumes one busy answer: the delay before it, or undefined when this admin write goes through. */
  takeBusyAdminWrite(): number | undefined {
    if (this.busyAdminWrites <= 0) return undefined;
    this.busyAdminWrites -= 1;
    return this.busyAdminDelayMs;
  }

  reset(): void {
    this.ackDelayMs = 0;
    this.refusals = 0;
    this.busyAdminWrites = 0;
    this.busyAdminDelayMs = 0;
  }

  /** Runs `action` after the configured ack delay. */
  afterAckDelay(action: () => void): void {
    if (this.ackDelayMs <= 0) return action();
    this.acksHeld += 1;
    setTimeout(() => {
      this.acksHeld -= 1;
      action();
    }, this.ackDelayMs);
  }
}
