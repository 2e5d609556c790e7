// The download button's links (the executed .ipynb, the page's source) save a file instead of opening it in a tab.
document.addEventListener("DOMContentLoaded", () => {
  for (const a of document.querySelectorAll('a[href*="_sources/"]')) {
    a.setAttribute("download", decodeURIComponent(a.pathname.split("/").pop()));
    a.removeAttribute("target");
  }
});
