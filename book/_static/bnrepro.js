// The download button's links (the executed .ipynb, the page's source) save a file instead of opening it in a tab.
document.addEventListener("DOMContentLoaded", () => {
  for (const a of document.querySelectorAll('a[href*="_sources/"]')) {
    a.setAttribute("download", decodeURIComponent(a.pathname.split("/").pop()));
    a.removeAttribute("target");
  }
});

// Bold verdicts in the prose (glued text: "**{glue:text}`<key>_verdict`**") get the spans that bnrepro.claims.mark_verdicts
// puts in the claims tables and the summary box: each verdict word in "verdict verdict-<the word, hyphenated>", which
// bnrepro.css colours. The words are bnrepro.claims.VERDICTS, longest first so that "not reproduced" is not read as
// "reproduced"; book/check_site.py fails a page with a bold verdict left unmarked.
const VERDICT_WORDS = /(partly reproduced|not reproduced|not testable|reproduced)/;
document.addEventListener("DOMContentLoaded", () => {
  for (const bold of document.querySelectorAll("article strong")) {
    if (bold.querySelector(".verdict")) continue;
    const walker = document.createTreeWalker(bold, NodeFilter.SHOW_TEXT);
    const texts = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) texts.push(node);
    for (const node of texts) {
      const parts = node.textContent.split(VERDICT_WORDS);
      if (parts.length === 1) continue;
      node.replaceWith(...parts.map((part, i) => {
        if (i % 2 === 0) return part;
        const span = document.createElement("span");
        span.className = `verdict verdict-${part.replace(/ /g, "-")}`;
        span.textContent = part;
        return span;
      }));
    }
  }
});
