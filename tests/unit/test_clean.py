import ftfy
import pytest

from schemas.records import Article, DeadLetter
from tests.kit import make_record
from transforms import clean
from transforms.clean import (
    canonical_url,
    clean_article,
    content_hash,
    drop_inert_elements,
    drop_repeated_title,
    html_metadata,
    join_split_body,
    normalise_text,
    registered_domain,
    repair_mojibake,
    shown_standfirst,
    split_site_name,
)
from transforms.parse import parse_record


def _article(**fields: object) -> Article:
    import json

    article = parse_record(make_record(json.dumps(fields).encode()))
    assert isinstance(article, Article)
    return article


def test_normalise_text_keeps_paragraphs_and_collapses_space() -> None:
    raw = "  Ｆｕｌｌwidth  text\u00a0here.\r\n\r\n\r\nSecond\tparagraph\x00 ends.  \n"
    assert normalise_text(raw) == "Ｆｕｌｌwidth text here.\n\nSecond paragraph ends."


@pytest.mark.parametrize(
    "text",
    [
        "The rate rose to 7¾ per cent over 3½ years.",  # NFKC would write "73⁄4", "31⁄2"
        "ﻻ إله إلا الله",  # an Arabic presentation form (lam-alef ligature), NFKC folds it
        "The ﬁnal ² and ＡＢＣ stay as written.",
        "Café, naïve, Ångström",
    ],
)
def test_stored_text_is_nfc_never_nfkc(text: str) -> None:
    import unicodedata

    stored = normalise_text(text)
    assert stored == unicodedata.normalize("NFC", text)
    decomposed = unicodedata.normalize("NFD", text)
    assert normalise_text(decomposed) == stored  # composed, whatever form it came in


def test_content_hash_matches_compatibility_variants() -> None:
    assert content_hash("The ﬁnal score was 3½.") == content_hash("The final score was 31⁄2.")
    assert content_hash("Café") == content_hash("Cafe\u0301")
    assert content_hash("Café") != content_hash("Cafe")


@pytest.mark.parametrize(
    "body",
    [
        "\u200b\u200b\u200b",
        "\ufeff \u00ad\n\u2060",
        "\u200e\u200f\u200d\u200c \u202e",
        "\u00a0\u3000\u2028\u2029\t",
    ],
)
def test_a_body_of_invisible_characters_is_an_empty_body(body: str) -> None:
    outcome = clean_article(_article(url="https://news.example/x", body=body))
    assert isinstance(outcome, DeadLetter) and outcome.reason == "empty_body"


def test_invisible_characters_are_removed_but_joiners_kept() -> None:
    text = normalise_text("\ufeffSoft\u00adhyphen and zero\u200bwidth; می\u200cخواهم; 👩\u200d💻")
    assert text == "Softhyphen and zerowidth; می\u200cخواهم; 👩\u200d💻"


def test_canonical_url_drops_tracking_and_fragment() -> None:
    url = "HTTPS://WWW.Example.COM/a/b?utm_source=x&b=2&a=1&fbclid=z#comments"
    assert canonical_url(url) == "https://www.example.com/a/b?a=1&b=2"


def test_registered_domain() -> None:
    assert registered_domain("https://www.bbc.co.uk/news/x") == "bbc.co.uk"


def test_clean_article_derives_fields() -> None:
    cleaned = clean_article(_article(url="https://www.news.example/x?utm_medium=e", body="One two  three.\n\n\nFour."))
    assert isinstance(cleaned, Article)
    assert cleaned.text == "One two three.\n\nFour."
    assert cleaned.word_count == 4
    assert cleaned.content_hash == content_hash("One two three.\n\nFour.")
    assert cleaned.canonical_url == "https://www.news.example/x"
    assert cleaned.source == "news.example"
    assert cleaned.language == "en"
    assert len(cleaned.article_id) == 24
    assert cleaned.body is None and cleaned.html is None


def test_same_url_gives_same_id() -> None:
    first = clean_article(_article(url="https://n.example/a?utm_source=1", body="Text one."))
    second = clean_article(_article(url="https://N.example/a#x", body="Text two."))
    assert isinstance(first, Article) and isinstance(second, Article)
    assert first.article_id == second.article_id


def test_html_is_reduced_to_main_text() -> None:
    html = (
        "<html><head><title>Harbour news</title></head><body><nav>Home | Sport | Weather</nav>"
        "<article><h1>Harbour reopens</h1><p>The harbour in Dover reopened on Monday after a week of storms "
        "closed it to ferries and cargo ships, the port authority said.</p><p>Ferry operators expect "
        "normal timetables by Wednesday, once the backlog of lorries has cleared.</p></article>"
        "<footer>Copyright Harbour News. Cookie policy.</footer></body></html>"
    )
    cleaned = clean_article(_article(url="https://h.example/a", html=html))
    assert isinstance(cleaned, Article)
    assert "reopened on Monday" in cleaned.text and "normal timetables" in cleaned.text
    assert "Cookie policy" not in cleaned.text
    assert cleaned.title


def test_empty_body_and_html_without_text_are_dead_letters() -> None:
    empty = clean_article(_article(url="https://h.example/a", body="  \n\t "))
    assert isinstance(empty, DeadLetter) and empty.reason == "empty_body" and empty.stage == "clean"
    no_text = clean_article(_article(url="https://h.example/a", html="<html><body><div></div></body></html>"))
    assert isinstance(no_text, DeadLetter) and no_text.reason == "html_no_text"


def test_mojibake_is_repaired() -> None:
    cleaned = clean_article(
        _article(url="https://h.example/a", body="The cafÃ© owner said â€œnoâ€\x9d.", title="CafÃ© closes")
    )
    assert isinstance(cleaned, Article)
    assert cleaned.text == "The café owner said “no”."
    assert cleaned.title == "Café closes"


def test_html_metadata_fills_what_the_message_lacks() -> None:
    html = (
        "<html><head><title>Ferry strike ends | Coast News</title>"
        '<meta name="author" content="Mara Lind">'
        '<meta property="article:published_time" content="2026-11-02T08:00:00Z">'
        "</head><body><article><h1>Ferry strike ends</h1><p>The ferry strike in Oslo ended on Sunday after "
        "the union and operators agreed a new contract covering pay and rest periods for crews.</p><p>Services "
        "to Kiel and Copenhagen restart on Tuesday morning, the operator said in a statement.</p></article>"
        "</body></html>"
    )
    cleaned = clean_article(_article(url="https://coast.example/ferry", html=html))
    assert isinstance(cleaned, Article)
    assert cleaned.authors == ("Mara Lind",)
    assert cleaned.published_at is not None and cleaned.published_at.date().isoformat() == "2026-11-02"
    assert cleaned.title and "Ferry strike ends" in cleaned.title
    given = clean_article(
        _article(
            url="https://coast.example/ferry",
            html=html,
            title="Given title",
            published_at="2026-11-03T10:00:00Z",
            authors=["Given Author"],
        )
    )
    assert isinstance(given, Article)
    assert (given.title, given.authors, given.published_at.day) == ("Given title", ("Given Author",), 3)


def test_html_metadata_reads_json_ld_and_skips_broken_blocks() -> None:
    import trafilatura

    html = (
        '<html><head><meta property="og:title" content="Tram line opens">'
        '<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle", '
        '"headline": "Tram line opens", "datePublished": "2026-10-05T09:30:00Z", '
        '"author": [{"@type": "Person", "name": "Ada Brook"}, {"@type": "Person", "name": "Li Wen"}]}</script>'
        '<script type="application/ld+json">{"@context": "https://schema.org", broken</script>'
        "</head><body><article><h1>Tram line opens</h1><p>The new tram line from the station to the "
        "university opened on Sunday, a year late and over budget, the city council said.</p></article>"
        "</body></html>"
    )
    page = html_metadata(trafilatura.load_html(html), "https://t.example/tram")
    title, published_at, authors = page.title, page.published_at, page.authors
    assert title == "Tram line opens"
    assert published_at is not None and published_at.date().isoformat() == "2026-10-05"
    assert authors == ("Ada Brook", "Li Wen")


def test_drop_repeated_title_only_drops_a_first_line_that_is_the_title() -> None:
    text = "Harbour Reopens!\nThe harbour reopened on Monday.\nFerries are running."
    assert drop_repeated_title(text, "harbour reopens") == "The harbour reopened on Monday.\nFerries are running."
    assert drop_repeated_title(text, None, "Harbour reopens") == "The harbour reopened on Monday.\nFerries are running."
    assert drop_repeated_title(text, "Harbour reopens after storms") == text
    assert drop_repeated_title(text, None) == text
    assert drop_repeated_title("Harbour reopens", "Harbour reopens") == "Harbour reopens"


def test_html_text_does_not_repeat_the_headline() -> None:
    html = (
        "<html><head><title>Bridge closed | City News</title></head><body><article><h1>Bridge closed for "
        "repairs</h1><p>The old river bridge closed on Monday for six weeks of repairs to its deck and "
        "railings, the city's transport department said.</p><p>Buses will use the ring road, adding ten "
        "minutes to most journeys, and cyclists can use the ferry at no charge.</p></article></body></html>"
    )
    cleaned = clean_article(_article(url="https://city.example/bridge", html=html))
    assert isinstance(cleaned, Article)
    assert cleaned.text.startswith("The old river bridge closed on Monday")
    given = clean_article(_article(url="https://city.example/bridge", html=html, title="Bridge closed for repairs"))
    assert isinstance(given, Article) and given.text.startswith("The old river bridge")


def test_mojibake_repair_skips_only_lines_with_nothing_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [
        "Plain ASCII text, with ‘curly’ “quotes” – dashes — and an ellipsis…",
        "The cafÃ© owner said â€œnoâ€\x9d.",
        "AT&amp;T and M&amp;S",
        "ﬁne ＦＵＬＬ width",
        "nul\x00 and escape\x1b[31m here",
        "line\u2028separator and \ufeffbyte order mark",
        "\x93windows quotes\x94",
        "Zoë, Łódź and São Paulo",
        "A plain first line.\r\nThe cafÃ© line.\rA plain last line with £5.\n\nNext paragraph.",
        "x < y on this line\nand AT&amp;T on the next",
    ]
    for sample in samples:
        assert normalise_text(repair_mojibake(sample)) == normalise_text(ftfy.fix_text(sample, clean.FTFY_CONFIG))

    def no_ftfy(text: str, config: object = None) -> str:
        raise AssertionError("ftfy called on plain text")

    monkeypatch.setattr(ftfy, "fix_text", no_ftfy)
    assert repair_mojibake(samples[0]) == samples[0]
    assert repair_mojibake(f"{samples[0]}\n{samples[0]}") == f"{samples[0]}\n{samples[0]}"


def _standfirst_page(description: str, shown: str) -> str:
    return (
        f'<html><head><meta property="og:description" content="{description}"></head><body>'
        f'<header><h1>Library reopens</h1><p class="standfirst">{shown}</p></header>'
        "<article><p>The central library reopened on Saturday after two years of building work that "
        "added a children's floor, a roof garden and longer opening hours on weekdays.</p><p>More than "
        "three thousand people visited on the first day, the council said, twice the number expected.</p>"
        "</article></body></html>"
    )


def test_shown_standfirst_is_put_back_in_front_of_the_text() -> None:
    import trafilatura

    summary = "After two years of work the library is back, with a roof garden"
    cleaned = clean_article(_article(url="https://l.example/a", html=_standfirst_page(summary, summary)))
    assert isinstance(cleaned, Article)
    assert cleaned.text.split("\n")[0] == summary
    assert cleaned.text.split("\n")[1].startswith("The central library reopened")
    other = clean_article(_article(url="https://l.example/a", html=_standfirst_page(summary, "Something else shown")))
    assert isinstance(other, Article) and summary not in other.text
    tree = trafilatura.load_html(_standfirst_page(summary, summary))
    assert shown_standfirst(tree, f"{summary}.\nThe central library reopened.") is None
    assert shown_standfirst(tree, "The central library reopened.") == summary


def test_live_blog_metadata_comes_from_the_blog_not_its_updates() -> None:
    import json

    import trafilatura

    updates = [
        {"@type": "BlogPosting", "headline": f"Update {n}", "author": {"@type": "Person", "name": f"Guest Writer{n}"}}
        for n in range(300)
    ]
    blog = {
        "@context": "https://schema.org",
        "@type": "LiveBlogPosting",
        "headline": "Storm live: roads closed",
        "datePublished": "2026-11-20T07:00:00Z",
        "author": [{"@type": "Person", "name": "Ada Brook"}],
        "liveBlogUpdate": updates,
    }
    html = (
        f'<html><head><script type="application/ld+json">{json.dumps(blog)}</script></head><body><article>'
        "<h1>Storm live: roads closed</h1><p>Several main roads are closed this morning after the storm brought "
        "down trees and power lines across the county, police said.</p></article></body></html>"
    )
    page = html_metadata(trafilatura.load_html(html))
    title, published_at, authors = page.title, page.published_at, page.authors
    assert authors == ("Ada Brook",)
    assert title == "Storm live: roads closed"
    assert published_at is not None and published_at.date().isoformat() == "2026-11-20"


def test_drop_inert_elements_keeps_text_and_json_ld() -> None:
    import trafilatura

    tree = trafilatura.load_html(
        "<html><head><style>p {}</style><link rel='stylesheet' href='x.css'>"
        '<script type="application/ld+json">{"headline": "H"}</script><script>var a = 1;</script></head>'
        "<body><p>One <!-- note -->two<script>track()</script> three<svg><path d='M0'/></svg> four.</p>"
        "<template><p>hidden</p></template></body></html>"
    )
    drop_inert_elements(tree)
    assert tree.xpath("string(//p)") == "One two three four."
    assert not tree.xpath("//style|//link|//svg|//template|//comment()|//script[not(@type)]")
    assert tree.xpath('//script[@type="application/ld+json"]')


def _chunked_page(second_class: str) -> str:
    paragraph = "The council met on Tuesday to approve the new bridge over the river, after years of delay. "
    return (
        "<html><head><title>Bridge approved</title></head><body>"
        "<nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
        f"<div class='article__body'><p>{paragraph * 3}</p><p>First chunk ends here with the vote.</p></div>"
        "<aside class='ad-slot'>Advertisement</aside>"
        f"<div class='{second_class}'><p>{'The second chunk explains the costs of the bridge in detail. ' * 3}</p>"
        "<p>Work begins in the spring, the mayor said.</p></div>"
        "</body></html>"
    )


def test_an_article_body_split_into_like_containers_is_read_whole() -> None:
    import trafilatura

    tree = trafilatura.load_html(_chunked_page("article__body"))
    join_split_body(tree)
    assert len(tree.xpath("//div[@class='article__body']")[0].xpath(".//p")) == 4
    cleaned = clean_article(_article(url="https://n.example/bridge", html=_chunked_page("article__body")))
    assert isinstance(cleaned, Article)
    assert "the vote" in cleaned.text and "Work begins in the spring" in cleaned.text
    # A container of another class (a teaser, a related story) is not pulled in.
    other = trafilatura.load_html(_chunked_page("related-story"))
    join_split_body(other)
    assert len(other.xpath("//div[@class='article__body']")[0].xpath(".//p")) == 2


# Titles as real pages of the shared corpus give them (<title>, og:site_name, the page's domain).
SITE_SUFFIXES = [
    ("How RPA vendors aim to remain relevant in a world of AI agents | TechCrunch", ["TechCrunch", "techcrunch.com"]),
    ("Nepal says 'no proof' flydubai plane suffered bird strike | Reuters", ["Reuters", "reuters.com"]),
    ("Mexico's economy grew 1.1% in 1st quarter, 3.8% year on year | AP News", ["AP NEWS", "apnews.com"]),
    ("Coronavirus: New York ramps up mass burials amid outbreak - BBC News", ["BBC News", "bbc.com", "bbc"]),
    ("Despite everything, U.S. emissions dipped in 2019 | Salon.com", ["Salon", "salon.com", "salon"]),
    ("iOS 13 will fix the FaceTime eye contact problem - The Verge", ["The Verge", "theverge.com", "theverge"]),
    ("A Heat Shield for the Most Important Ice on Earth | The New Yorker", ["The New Yorker", "newyorker.com"]),
    ("Apple’s M5 iPad Pro ships next week - 9to5Mac", ["9to5mac.com", "9to5mac"]),
    ("Mark Meadows accused of timing retirement - POLITICO", ["politico.com", "politico"]),
    ("Prince Harry and Meghan LIVE | Royal | News | Express.co.uk", ["Express.co.uk", "express.co.uk", "express"]),
]


@pytest.mark.parametrize(("title", "sites"), SITE_SUFFIXES)
def test_a_site_name_is_taken_off_the_end_of_a_title(title: str, sites: list[str]) -> None:
    stripped, site_name = split_site_name(title, sites)
    assert site_name is not None and title == f"{stripped}{title[len(stripped) : -len(site_name)]}{site_name}"
    assert 1 <= len(title) - len(stripped) - len(site_name) <= 3  # only the separator between them


@pytest.mark.parametrize(
    ("title", "sites"),
    [
        ("Apple unveils iPhone - live", ["apple.com", "apple"]),  # "live" is no outlet
        ("Tony Blair: Why there has to be compromise in Ukraine", ["The Standard", "standard.co.uk"]),
        ("Open Progress - Why collaborative thinking beats individual smarts | Open Future", ["The Economist"]),
        ("Reuters", ["Reuters"]),  # nothing would be left
        ("Bitcoin - a history | Part 2", ["coindesk.com", "coindesk"]),
    ],
)
def test_a_title_without_the_site_name_is_kept(title: str, sites: list[str]) -> None:
    assert split_site_name(title, sites) == (title, None)


def test_clean_article_fills_site_name_from_the_title_or_the_page() -> None:
    body = "Apple will ship the new tablet next week, the company said on Monday in a statement."
    given = clean_article(_article(url="https://9to5mac.com/2025/ipad", title="New iPad ships - 9to5Mac", body=body))
    assert isinstance(given, Article) and (given.title, given.site_name) == ("New iPad ships", "9to5Mac")
    html = (
        '<html><head><meta property="og:site_name" content="The Tram Times"><title>Trams return | The Tram Times'
        "</title></head><body><article><p>" + body + " " + body + "</p></article></body></html>"
    )
    page = clean_article(_article(url="https://trams.example/a", html=html))
    assert isinstance(page, Article) and (page.title, page.site_name) == ("Trams return", "The Tram Times")
    plain = clean_article(_article(url="https://trams.example/b", title="Trams return", body=body))
    assert isinstance(plain, Article) and (plain.title, plain.site_name) == ("Trams return", None)
