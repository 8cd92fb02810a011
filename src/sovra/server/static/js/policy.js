// C2SP tlog-policy (https://c2sp.org/tlog-policy): the witnesses the page is told of, and the
// quorum over them (a witness, or a group of k of n members, or "none"). The page verifies
// each cosignature itself (note.js); this says whether those that verified meet the quorum.

import { parseVkey } from "./note.js";

const NONE = "none";

/** {witnesses: [{name, key}], groups: Map(name -> {k, members}), quorum}; log lines are
 *  skipped: the page checks the log's signature with the key it shows. */
export async function parsePolicy(text) {
  const witnesses = [];
  const groups = new Map();
  let quorum = null;
  const lines = text.split("\n");
  for (let n = 0; n < lines.length; n++) {
    const words = lines[n].trim().split(/[ \t]+/);
    if (words[0] === "" || words[0].startsWith("#")) continue;
    const where = `policy line ${n + 1}`;
    if (words[0] === "log") continue;
    if (words[0] === "witness") {
      if (words.length < 3) throw new Error(`${where}: a witness line is 'witness <name> <vkey> [<url>]'`);
      witnesses.push({ name: words[1], key: await parseVkey(words[2]) });
    } else if (words[0] === "group") {
      const [, name, rule, ...members] = words;
      const k = rule === "all" ? members.length : rule === "any" ? 1 : Number(rule);
      if (!members.length || !Number.isInteger(k) || k < 1 || k > members.length) {
        throw new Error(`${where}: a group line is 'group <name> all|any|<k> <member>...'`);
      }
      for (const m of members) {
        if (!groups.has(m) && !witnesses.some((w) => w.name === m)) throw new Error(`${where}: ${m} is defined nowhere before`);
      }
      groups.set(name, { k, members });
    } else if (words[0] === "quorum") {
      if (quorum !== null || words.length !== 2) throw new Error(`${where}: a policy has one line 'quorum <name>'`);
      quorum = words[1];
    } else {
      throw new Error(`${where}: unknown keyword ${words[0].slice(0, 40)}`);
    }
  }
  if (quorum === null) throw new Error("the policy has no quorum line");
  if (quorum !== NONE && !groups.has(quorum) && !witnesses.some((w) => w.name === quorum)) {
    throw new Error(`the quorum ${quorum} is not a witness or group`);
  }
  return { witnesses, groups, quorum };
}

/** The policy's name of the witness whose vkey is text, if any. */
export function witnessName(policy, text) {
  return policy.witnesses.find((w) => w.key.text === text)?.name;
}

/** Whether the witnesses named (policy names) meet the quorum. */
export function quorumMet(policy, names) {
  const have = new Set(names);
  const met = (name) => {
    const g = policy.groups.get(name);
    if (!g) return have.has(name);
    return g.members.filter(met).length >= g.k;
  };
  return policy.quorum === NONE || met(policy.quorum);
}

/** The quorum in words: "2 of (A, B)", "A", "none". */
export function describeQuorum(policy, name = policy.quorum) {
  const g = policy.groups.get(name);
  if (!g) return name;
  return `${g.k} of (${g.members.map((m) => describeQuorum(policy, m)).join(", ")})`;
}
