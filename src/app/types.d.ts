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
