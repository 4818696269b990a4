/** The six steps as tabs, in the order a user walks through them; links are URL hashes (#/calibrate). */
import { SECTIONS } from '../sections.ts';
import { useAppStore } from '../store/index.ts';

export function SectionNav() {
  const current = useAppStore((s) => s.section);
  return (
    <nav className="section-nav" aria-label="Sections">
      <ol>
        {SECTIONS.map((s, i) => (
          <li key={s.id}>
            <a href={`#/${s.id}`} aria-current={s.id === current ? 'page' : undefined} title={s.summary} data-testid={`tab-${s.id}`}>
              <span className="step">{i + 1}</span>
              {s.title}
              {s.coming && <span className="soon">soon</span>}
            </a>
          </li>
        ))}
      </ol>
    </nav>
  );
}
