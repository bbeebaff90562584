// Small in-memory stores: a loader plus subscribers. A refresh asked for while one is running
// runs once more afterwards (never twice in parallel), so a burst of SSE events costs at most
// two reads. Data lives only in these objects: nothing goes to browser storage.

export class Store {
  constructor(load) {
    this.load = load;
    this.value = null;
    this.error = null;
    this.listeners = new Set();
    this.running = null;
    this.again = false;
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  refresh() {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const previous = this.value;
        try {
          this.value = await this.load();
          this.error = null;
        } catch (err) {
          this.error = err;
        }
        for (const listener of this.listeners) listener(this.value, previous, this.error);
      } while (this.again);
      this.running = null;
    })();
    return this.running;
  }

  clear() {
    this.value = null;
  }
}

/** A store per key (e.g. one per message id), created on first use. */
export class StoreMap {
  constructor(loadFor) {
    this.loadFor = loadFor;
    this.stores = new Map();
    this.listeners = new Set();
  }

  /** listener(key, value, error) on any member's refresh. */
  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(key) {
    let store = this.stores.get(key);
    if (!store) {
      store = new Store(() => this.loadFor(key));
      store.subscribe((value, _previous, error) => {
        for (const listener of this.listeners) listener(key, value, error);
      });
      this.stores.set(key, store);
    }
    return store;
  }

  refreshLoaded() {
    for (const store of this.stores.values()) if (store.value !== null || store.running) store.refresh();
  }

  clear() {
    this.stores.clear();
  }
}
