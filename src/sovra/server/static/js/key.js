// Which key the page verifies the log with: the one this browser pinned, else the server's
// own (trust on first use), fetched from /v1/log/key, not from the checkpoint it checks.

import { getText } from "./dom.js";
import { parseVkey } from "./note.js";
import { trust } from "./trust.js";

export async function logKey(origin) {
  const served = await parseVkey(await getText("/v1/log/key"));
  const pinnedText = trust.pinnedKey(origin);
  if (!pinnedText) return { key: served, served, source: "tofu" };
  let pinned;
  try { pinned = await parseVkey(pinnedText); } catch (e) {
    return { key: served, served, source: "tofu", error: `the pinned key is unusable: ${e.message}` };
  }
  return { key: pinned, served, source: "pinned", mismatch: pinned.text !== served.text };
}

export async function witnessKeys(origin, configured) {
  const keys = [];
  for (const text of [...trust.witnesses(origin), ...configured]) {
    try {
      const k = await parseVkey(text);
      if (!keys.some((o) => o.text === k.text)) keys.push({ ...k, mine: trust.witnesses(origin).includes(text) });
    } catch { /* a malformed key is shown as unknown signer */ }
  }
  return keys;
}

export function groupHex(hex) {
  return hex.match(/.{1,4}/g).join(" ");
}
