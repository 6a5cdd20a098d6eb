// word-stats: a warden capability written in JavaScript.
//
// Built with componentize-js against wit/world.wit; see build.sh and
// docs/authoring.md ("JavaScript"). WIT names map to camelCase
// (`stop-words` -> `stopWords`); `option` is `undefined`/`null` or the value;
// returning from a `result` export is `ok`, throwing is `err`.

import { log, logFields } from "warden:host/log@0.1.0";

export function analyze(doc) {
  if (doc.title.trim() === "") {
    log("warn", "rejected a document without a title");
    throw "the document has no title";
  }
  log("info", `analyzing ${doc.title}`);

  const stop = new Set((doc.stopWords ?? []).map((w) => w.toLowerCase()));
  const words = (doc.text.toLowerCase().match(/[a-z0-9']+/g) ?? []).filter(
    (w) => !stop.has(w),
  );

  const counts = new Map();
  for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
  const top = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, doc.top ?? 3)
    .map(([word, count]) => ({ word, count }));

  let longest;
  for (const w of words) if (longest === undefined || w.length > longest.length) longest = w;

  logFields("debug", "document analyzed", [
    ["title", doc.title],
    ["words", String(words.length)],
  ]);
  return { title: doc.title, words: words.length, top, longest };
}
