/**
 * The article's pages (article.html): a navigation bar over web/pages/registry.ts,
 * the page named by the URL fragment (#softmax), previous / next links.
 */
import { PAGES } from './pages/registry.js';

const $ = (id: string): HTMLElement => document.getElementById(id)!;

function show(): void {
  const id = location.hash.slice(1);
  const index = Math.max(0, PAGES.findIndex((p) => p.id === id));
  const page = PAGES[index]!;
  document.querySelectorAll('#sections a').forEach((a) => a.toggleAttribute('aria-current', a.getAttribute('href') === `#${page.id}`));
  $('page-title').textContent = `${index + 1}. ${page.title}`;
  $('page-file').textContent = page.file;
  $('page-run').textContent = page.file.replace(/\.ts$/, '.js');
  const body = $('page-body');
  body.replaceChildren();
  try {
    page.render(body);
  } catch (e) {
    $('error').hidden = false;
    $('error').textContent = `${page.title}: ${(e as Error).message}`;
  }
  const prev = PAGES[index - 1];
  const next = PAGES[index + 1];
  ($('prev') as HTMLAnchorElement).href = prev ? `#${prev.id}` : '#';
  $('prev').hidden = !prev;
  ($('next') as HTMLAnchorElement).href = next ? `#${next.id}` : '#';
  $('next').hidden = !next;
  document.body.dataset.page = page.id;
}

const nav = $('sections');
PAGES.forEach((p, i) => {
  const a = document.createElement('a');
  a.href = `#${p.id}`;
  a.textContent = `${i + 1}. ${p.title}`;
  nav.append(a);
});
window.addEventListener('hashchange', show);
show();
