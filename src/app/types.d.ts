/** The few plotly.js entry points the charts use (the package ships no types). */
declare module 'plotly.js-dist-min' {
  export type Data = Record<string, unknown>;
  export type Layout = Record<string, unknown>;
  export type Config = Record<string, unknown>;
  export function react(root: HTMLElement, data: Data[], layout?: Layout, config?: Config): Promise<HTMLElement>;
  export function purge(root: HTMLElement): void;
  const Plotly: { react: typeof react; purge: typeof purge; Plots: { resize(root: HTMLElement): void } };
  export default Plotly;
}

/** opentype.js ships no types: text-render.ts describes the parts it uses (OpenTypeApi) and casts to them. */
declare module 'opentype.js' {
  const api: unknown;
  export default api;
  export function parse(buffer: ArrayBuffer): unknown;
}

/** The part of pngjs the CLI and the tests use (the package ships no types). */
declare module 'pngjs' {
  export class PNG {
    constructor(opts: { width: number; height: number });
    width: number;
    height: number;
    data: Buffer;
    static sync: {
      read(buffer: Uint8Array): { width: number; height: number; data: Buffer };
      write(png: { width: number; height: number; data: Buffer }): Buffer;
    };
  }
}
