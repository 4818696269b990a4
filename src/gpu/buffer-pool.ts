/**
 * Buffer pool: GPU buffers are reused by (usage, size rounded up to 16 bytes), as onnxruntime-web's GPU
 * data manager does. Reuse after submit is safe because queue operations execute in order.
 * Buffers beyond the idle budget are destroyed instead of kept.
 */
export class BufferPool {
  private readonly free = new Map<string, GPUBuffer[]>();
  private readonly live = new Set<GPUBuffer>();
  private idleBytes = 0;

  constructor(
    private readonly device: GPUDevice,
    /** Bytes of idle buffers kept for reuse. */
    private readonly idleBudget = 512 * 2 ** 20,
  ) {}

  acquire(size: number, usage: number): GPUBuffer {
    const rounded = Math.ceil(size / 16) * 16;
    const key = `${usage}:${rounded}`;
    const list = this.free.get(key);
    const reused = list?.pop();
    if (reused) {
      this.idleBytes -= rounded;
      this.live.add(reused);
      return reused;
    }
    const buf = this.device.createBuffer({ size: rounded, usage });
    this.live.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) return;
    if (this.idleBytes + buf.size > this.idleBudget) {
      buf.destroy();
      return;
    }
    const key = `${buf.usage}:${buf.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
    this.idleBytes += buf.size;
  }

  releaseAll(bufs: Iterable<GPUBuffer>): void {
    for (const b of bufs) this.release(b);
  }

  /** Buffers handed out and not yet released (for leak checks in tests). */
  get liveCount(): number {
    return this.live.size;
  }

  destroyAll(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    for (const b of this.live) b.destroy();
    this.free.clear();
    this.live.clear();
    this.idleBytes = 0;
  }
}
