// Static checks of the web application: every word it asks for exists in
// Korean and in English, and values from the API enter the page as text.
import { readFileSync } from 'node:fs';
import { STRINGS } from '../app/i18n.js';

const globalThisStorage = new Map();
globalThis.localStorage ??= { getItem: (k) => globalThisStorage.get(k) ?? null, setItem: (k, v) => globalThisStorage.set(k, v) };

const app = readFileSync(new URL('../app/app.js', import.meta.url), 'utf8');
const used = new Set([...app.matchAll(/(?<![\w.])t\('([a-z_0-9]+)'/g)].map((m) => m[1]));
const missing = [];
for (const [lang, words] of Object.entries(STRINGS)) {
  for (const key of used) if (!(key in words)) missing.push(`${lang}: ${key}`);
}
const ko = Object.keys(STRINGS.ko).sort().join();
const en = Object.keys(STRINGS.en).sort().join();
if (missing.length || ko !== en) {
  console.error(`words missing: ${missing.join(', ')}${ko !== en ? ' (and the two languages have different keys)' : ''}`);
  process.exit(1);
}
console.log(`i18n: ${used.size} words used, all in ${Object.keys(STRINGS).join(' and ')}`);

// Values from the API enter the page as text: the one innerHTML is the
// hub's own QR code, and Leaflet (which reads strings as HTML) gets text
// nodes only.
const html = [...app.matchAll(/\.innerHTML\s*=\s*([^;]+);/g)].map((m) => m[1].trim());
const labels = [...app.matchAll(/\.bind(?:Popup|Tooltip)\((?!plain\()/g)];
if (html.join() !== 'e.qr_svg' || labels.length) {
  console.error(`HTML from strings: innerHTML = ${html.join(', ')}; ${labels.length} map labels not through plain()`);
  process.exit(1);
}
console.log('app.js: API values enter the page as text only');

// A word given twice in one language would silently replace the first.
const source = readFileSync(new URL('../app/i18n.js', import.meta.url), 'utf8');
for (const block of source.split(/^const en = /m)) {
  const body = block.slice(0, block.indexOf('};'));
  const keys = [...body.matchAll(/(?:^|[{,]\s*)([a-z_0-9]+):/gm)].map((m) => m[1]);
  const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
  if (twice.length) {
    console.error(`i18n.js gives these words twice: ${[...new Set(twice)].join(', ')}`);
    process.exit(1);
  }
}
console.log('i18n.js: every word given once');
