/** A chart with its title, a short explanation, and optional controls in the header. */
import type { ReactNode } from 'react';

export function ChartCard({ title, explain, aside, children, testId }: { title: string; explain: ReactNode; aside?: ReactNode; children: ReactNode; testId: string }) {
  return (
    <section className="card chart-card" data-testid={testId} aria-label={title}>
      <header className="chart-head">
        <h2>{title}</h2>
        {aside}
      </header>
      {children}
      <div className="explain">{explain}</div>
    </section>
  );
}
