/** The app shell: header, section tabs, and the open section. */
import { Header } from './components/header.tsx';
import { DeviceBanner } from './components/playground/device-banner.tsx';
import { SectionNav } from './components/section-nav.tsx';
import { CalibratePage } from './pages/calibrate-page.tsx';
import { ComingSoonPage } from './pages/coming-soon-page.tsx';
import { ModelPage } from './pages/model-page.tsx';
import { PlaygroundPage } from './pages/playground-page.tsx';
import { QuantizePage } from './pages/quantize-page.tsx';
import { SearchPage } from './pages/search-page.tsx';
import { EvaluatePage } from './pages/evaluate-page.tsx';
import { SECTIONS } from './sections.ts';
import { useAppStore } from './store/index.ts';

export function App() {
  const sectionId = useAppStore((s) => s.section);
  const index = SECTIONS.findIndex((s) => s.id === sectionId);
  const section = SECTIONS[index];
  return (
    <div className="app">
      <Header />
      <SectionNav />
      <main className="app-main">
        {section.coming ? null : <DeviceBanner />}
        {/* Kept mounted while hidden: leaving and coming back must not lose the charts. */}
        <div hidden={section.id !== 'playground'}>
          <PlaygroundPage />
        </div>
        {section.id === 'model' && <ModelPage />}
        {section.id === 'calibrate' && <CalibratePage />}
        {section.id === 'awq' && <SearchPage />}
        {section.id === 'quantize' && <QuantizePage />}
        {section.id === 'evaluate' && <EvaluatePage />}
        {section.coming && <ComingSoonPage section={section} step={index + 1} />}
      </main>
    </div>
  );
}
