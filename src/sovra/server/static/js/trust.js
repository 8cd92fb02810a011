// What this browser remembers about a log: the key it pinned, witness keys it added, and
// the last checkpoint it verified (for consistency). Kept in localStorage, per origin.

const get = (k) => { try { return localStorage.getItem(k); } catch { return null; } };
const set = (k, v) => { try { localStorage.setItem(k, v); } catch { /* private mode */ } };
const del = (k) => { try { localStorage.removeItem(k); } catch { /* private mode */ } };

export const trust = {
  pinnedKey: (origin) => get(`sovra.pinned.${origin}`),
  pinKey: (origin, vkey) => set(`sovra.pinned.${origin}`, vkey),
  unpinKey: (origin) => del(`sovra.pinned.${origin}`),
  seen: (origin) => {
    const raw = get(`sovra.seen.${origin}`);
    try { return raw ? JSON.parse(raw) : null; } catch { return null; }
  },
  saw: (origin, note) => set(`sovra.seen.${origin}`, JSON.stringify({ note, at: Date.now() })),
  witnesses: (origin) => {
    try { return JSON.parse(get(`sovra.witnesses.${origin}`) || "[]"); } catch { return []; }
  },
  addWitness: (origin, vkey) => {
    const list = trust.witnesses(origin).filter((k) => k !== vkey);
    set(`sovra.witnesses.${origin}`, JSON.stringify([...list, vkey]));
  },
};
