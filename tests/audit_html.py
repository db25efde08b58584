"""Reading the auditor pages' HTML in tests: the text of elements by id, table rows, links."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

from tests.support import TEST_KEY

PAGES = [
    "/audit/", "/audit/policy", "/audit/matrix", "/audit/changes", "/audit/changes?account=acc_b", "/audit/explain",
    "/audit/decisions", "/audit/decisions?actor=u_client&allowed=false",
]
VOID = {"br", "hr", "img", "input", "meta", "link", "option", "source", "wbr"}


def basic(key: str, username: str = "auditor") -> dict:
    """The header a browser sends after its login prompt: the API key as the password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode()}


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def page(client, path: str, status: int = 200, headers: dict | None = None):
    """GET an auditor page with the Flask test client (signed in with the preshared key unless `headers`)."""
    response = client.get(path, headers=basic(TEST_KEY) if headers is None else headers)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True)[:2000])
    assert response.mimetype == "text/html"
    return response


class Element:
    def __init__(self, tag: str, attributes: dict[str, str], parent: Element | None) -> None:
        self.tag = tag
        self.attributes = attributes
        self.parent = parent
        self.children: list[Element | str] = []

    @property
    def text(self) -> str:
        """The element's text, whitespace collapsed."""
        parts: list[str] = []

        def walk(element: Element) -> None:
            for child in element.children:
                parts.append(child) if isinstance(child, str) else walk(child)

        walk(self)
        return " ".join("".join(parts).split())

    def find_all(self, tag: str | None = None, **attributes: str) -> list[Element]:
        found = []
        for child in self.children:
            if isinstance(child, Element):
                if (tag is None or child.tag == tag) and all(
                    child.attributes.get(name.rstrip("_")) == value for name, value in attributes.items()
                ):
                    found.append(child)
                found.extend(child.find_all(tag, **attributes))
        return found

    def find(self, tag: str | None = None, **attributes: str) -> Element:
        found = self.find_all(tag, **attributes)
        assert found, f"no <{tag or '*'} {attributes}> in the page"
        return found[0]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {}, None)
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {name: value or "" for name, value in attrs}, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_endtag(self, tag):
        element = self.current
        while element is not None and element.tag != tag:
            element = element.parent
        if element is not None and element.parent is not None:
            self.current = element.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str) -> Element:
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return builder.root


def matrix_cells(page: Element, resource_type: str, action: str) -> list[str]:
    """The cells of one action's row of the permission matrix, left to right."""
    section = page.find("section", id=f"matrix-{resource_type}")
    row = section.find("tr", **{"data-action": action})
    return [cell.text for cell in row.find_all("td")]
