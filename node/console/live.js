// The live feed: GET /v1/events (server-sent events, ids and metadata only, never content).
// On every (re)connection the console re-reads state, since events sent while it was
// disconnected are not replayed. If the stream fails for good (e.g. the session ended) it
// retries with back-off; the status is shown in the header as text.

const KINDS = ['inbox', 'sent', 'receipt', 'ack', 'escalated', 'escalation', 'purged'];

export class LiveFeed {
  constructor({ onEvent, onStatus, onConnected }) {
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onConnected = onConnected;
    this.source = null;
    this.retryMs = 1000;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  connect() {
    if (this.stopped) return;
    this.onStatus('connecting');
    const source = new EventSource('/v1/events');
    this.source = source;
    source.addEventListener('open', () => {
      this.retryMs = 1000;
      this.onStatus('live');
      this.onConnected();
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        this.onStatus('offline');
        this.schedule();
      } else {
        this.onStatus('reconnecting');
      }
    });
    for (const kind of KINDS) {
      source.addEventListener(kind, (event) => {
        let data = {};
        try {
          data = JSON.parse(event.data);
        } catch {
          return;
        }
        this.onEvent(kind, data);
      });
    }
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30_000);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
  }
}
