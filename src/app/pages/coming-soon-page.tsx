/** A section that is not built yet: what it will do, in plain words, and nothing pretending to work. */
import type { Section } from '../sections.ts';

export function ComingSoonPage({ section, step }: { section: Section; step: number }) {
  return (
    <section className="coming-soon card" aria-labelledby="coming-title" data-testid={`page-${section.id}`}>
      <p className="eyebrow">
        Step {step} · not built yet
      </p>
      <h2 id="coming-title">{section.title}</h2>
      <p className="lead">{section.summary}</p>
      {section.coming?.map((p) => (
        <p key={p}>{p}</p>
      ))}
      <p className="muted">
        Until then, the <a href="#/playground">Playground</a> shows the quantizers these steps will use, on one tensor.
      </p>
    </section>
  );
}
