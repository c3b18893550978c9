// Copies the map library from node_modules into app/vendor, where the hub
// embeds it (the binary then serves the whole application with nothing to
// install). Run after `npm install` when the library's version changes;
// the copies are committed.
import { cpSync, mkdirSync } from 'node:fs';
const dist = new URL('./node_modules/leaflet/dist/', import.meta.url);
const out = new URL('./app/vendor/leaflet/', import.meta.url);
mkdirSync(out, { recursive: true });
for (const f of ['leaflet.js', 'leaflet.css']) cpSync(new URL(f, dist), new URL(f, out));
cpSync(new URL('images/', dist), new URL('images/', out), { recursive: true });
cpSync(new URL('../LICENSE', dist), new URL('LICENSE', out));
console.log('vendored leaflet into app/vendor/leaflet');
