"""The example article page: what a CMS page looks like with readrate's two pasted lines under the text.

The collector serves it (with `example_text()` as the article) so a site owner can try
the widget before pasting `SNIPPET` into their own templates, and the browser tests load it.
Pure functions of their arguments: everything that reaches the HTML is escaped here.
"""

from __future__ import annotations

import zlib
from html import escape

# The two lines a site owner pastes: the script once per page, the element under each article.
SCRIPT_LINE = '<script src="{script_url}" defer></script>'
ELEMENT = '<div data-readrate-article="{article_id}"></div>'
SNIPPET = SCRIPT_LINE + "\n" + ELEMENT
# The element a CMS prints instead when it signs its logged-in readers' votes (DESIGN.md: voter token).
SIGNED_ELEMENT = '<div data-readrate-article="{article_id}" data-readrate-voter-token="{voter_token}"></div>'

BYLINE = "By the Example Desk · Updated 2 December 2025"
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} · The Example Courier</title>
<style>
body {{ margin: 0; font: 18px/1.6 Georgia, "Times New Roman", serif; color: #222; background: #fafaf7; }}
header, main, footer {{ max-width: 40rem; margin: 0 auto; padding: 0 1.25rem; }}
header {{ border-bottom: 1px solid #ddd; padding-top: 1rem; padding-bottom: .5rem;
         font: bold 1.1rem/1.2 system-ui, sans-serif; letter-spacing: .02em; }}
h1 {{ font-size: 2rem; line-height: 1.2; margin: 1.5rem 0 .25rem; text-wrap: balance; }}
.byline {{ color: #666; font: .85rem system-ui, sans-serif; margin: 0 0 1.5rem; }}
[data-readrate-article] {{ font: .9rem system-ui, sans-serif; border-top: 1px solid #ddd; margin-top: 2rem; padding-top: .75rem; }}
footer {{ color: #888; font: .8rem system-ui, sans-serif; padding-top: 2rem; padding-bottom: 2rem; }}
</style>
</head>
<body>
<header>The Example Courier</header>
<main>
<article>
<h1>{title}</h1>
<p class="byline">{byline}</p>
{paragraphs}
{snippet}
</article>
</main>
<footer>An example page served by the readrate collector.</footer>
</body>
</html>
"""

_TOPICS = [
    ("The river path reopens", "the river path along the old mill", "walkers and cyclists"),
    ("A new timetable for the night buses", "the night bus timetable", "late-shift workers"),
    ("The library extends its opening hours", "the library's longer evenings", "students"),
    ("Market square gets its trees back", "the replanting of the market square", "shopkeepers"),
]


def example_page(article_id: str, *, title: str, paragraphs: list[str], script_url: str = "/readrate.js",
                 voter_token: str | None = None) -> str:
    """A complete HTML5 article page: title, byline, the paragraphs, then the pasted readrate lines."""
    element = ELEMENT if voter_token is None else SIGNED_ELEMENT
    snippet = (SCRIPT_LINE.format(script_url=escape(script_url)) + "\n"
               + element.format(article_id=escape(article_id), voter_token=escape(voter_token or "")))
    return PAGE.format(title=escape(title), byline=escape(BYLINE), snippet=snippet,
                       paragraphs="\n".join(f"<p>{escape(p)}</p>" for p in paragraphs))


def example_text(article_id: str) -> tuple[str, list[str]]:
    """A plausible placeholder article for `article_id`: the same title and text every time."""
    headline, subject, people = _TOPICS[zlib.crc32(article_id.encode()) % len(_TOPICS)]
    title = f"{headline} ({article_id})"
    paragraphs = [
        (f"This is the example article “{article_id}”, a page made up to show readrate at work. It is "
         f"about {subject}, and it reads like the stories a local news site publishes every day."),
        (f"Council officers said the change follows a year of letters from {people}, who asked for "
         "it at every public meeting. The work was finished ahead of schedule and under budget."),
        ("Below the text is the readrate widget. Opening this page in a visible tab counts one read; "
         "a page opened in a background tab is counted when you switch to it. Pick a star to rate "
         "the article: your rating shows at once, and the vote count follows when the workers have "
         "counted it."),
    ]
    return title, paragraphs
