// Every word the application asks for exists in Korean and in English.
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
