"""The Tools page in Chromium against a real `workbench serve` on examples/workbench.toml:
the catalog with each source's health, calls made through the generated form, results
rendered as a client sees them (text, structured JSON, images, errors in red), progress while
a call runs, and cancel."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.docker, pytest.mark.npm]


def field(page: Any, name: str) -> Any:
    """A form field by its label (a required one's label ends with a "*")."""
    return page.get_by_label(re.compile(rf"^{re.escape(name)}\*?$"))


def open_tool(page: Any, server: Any, name: str) -> None:
    page.goto(f"{server.base}/ui/tools/{name}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)


def test_lists_every_source_and_tool(page: Any, studio_server: Any, shot: Any) -> None:
    list_ = page.get_by_role("navigation", name="Tools")
    for name in ("demo__add", "sandbox__run_python", "everything__get-tiny-image", "executor"):
        expect(list_.get_by_role("link", name=re.compile(f"^{re.escape(name)}"))).to_be_visible()
    # Each source's health, from the server, next to its name.
    for source in ("demo", "everything", "sandbox"):
        expect(page.locator(".tool-list .source", has_text=source).locator(".badge")).to_have_text("up")
    # The excluded tools of the example config are not offered.
    expect(list_.get_by_role("link", name=re.compile("^everything__get-env"))).to_have_count(0)
    shot(page, "tools")

    # "/" focuses the filter; typing narrows the list.
    page.locator("body").press("/")
    expect(page.get_by_label("Filter tools")).to_be_focused()
    page.keyboard.type("tiny")
    expect(list_.get_by_role("link")).to_have_count(1)


def test_call_demo_add_through_the_form(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "demo__add")
    field(page, "a").fill("2")
    field(page, "b").fill("40")
    page.get_by_role("button", name="Call").click()
    result = page.get_by_label("Result")
    expect(result).to_contain_text("42")
    expect(result.locator("details.json")).to_contain_text('"total": 42')  # structured content, as JSON
    expect(result).not_to_have_class(re.compile("is-error"))
    shot(page, "tools-demo-add")


def test_an_error_result_is_red(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "demo__add")
    page.get_by_role("button", name="Edit as JSON").click()
    page.get_by_label("Arguments as JSON").fill('{"a": 1, "b": "not a number"}')
    page.get_by_role("button", name="Call").click()
    result = page.get_by_label("Result")
    expect(result).to_have_class(re.compile("is-error"))
    title = result.locator(".result-title")
    expect(title).to_contain_text("Error")
    red, green, blue = (int(c) for c in re.findall(r"\d+", title.evaluate("e => getComputedStyle(e).color"))[:3])
    assert red > 150 and green < 100 and blue < 100, "an error's title is red"
    shot(page, "tools-error")


def test_run_python_in_the_sandbox(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "sandbox__run_python")
    field(page, "code").fill("import platform\nprint('hello from', platform.python_implementation(), 6 * 7)")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_label("Result")).to_contain_text("hello from CPython 42", timeout=60_000)
    shot(page, "tools-run-python")


def test_an_image_result_is_shown(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "everything__get-tiny-image")
    page.get_by_role("button", name="Call").click()
    image = page.get_by_label("Result").get_by_role("img")
    expect(image).to_be_visible()
    # Decoded and drawn, not a broken-image icon.
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, "tools-tiny-image")


def test_progress_streams_and_cancel_stops_the_call(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "demo__countdown")
    field(page, "seconds").fill("20")
    page.get_by_role("button", name="Call").click()
    status = page.get_by_role("status").filter(has=page.locator("progress"))
    expect(status).to_contain_text("s left", timeout=15_000)  # a progress notification arrived
    expect(page.get_by_role("button", name="Call")).to_be_disabled()
    shot(page, "tools-progress")
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_label("Result")).to_contain_text("cancelled")
    expect(page.get_by_role("button", name="Call")).to_be_enabled()


SCHEMA = {
    "type": "object",
    "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer", "default": 0}},
                        "required": ["x"]}},
    "properties": {
        "name": {"type": "string", "description": "Who", "default": "ada"},
        "mode": {"enum": ["fast", "careful"], "default": "careful"},
        "level": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
        "verbose": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "default": ["a"]},
        "colors": {"type": "array", "items": {"enum": ["red", "green", "blue"]}},
        "origin": {"$ref": "#/$defs/Point"},
        "path": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
        "extra": {"type": "object"},
    },
    "required": ["name", "origin"],
}


def test_forms_from_schemas_nested_objects_arrays_enums_defaults(page: Any, studio_server: Any, shot: Any) -> None:
    """The form generator on a schema with every shape, in the page itself: filled as a person
    does, it yields exactly the arguments a client would send (optional fields left out)."""
    page.evaluate("""async (schema) => {
        const { fieldFor } = await import('/ui/static/form.js');
        // A container of its own: the tools page the login lands on may still be rendering into
        // #page, and would replace a form put there (the test then found no field).
        document.getElementById('page').remove();
        const root = document.createElement('main');
        root.id = 'form-under-test';
        document.body.append(root);
        window.form = fieldFor(schema, { root: schema, top: true });
        const form = document.createElement('form');
        form.className = 'panel';
        form.append(window.form.el);
        root.append(form);
    }""", SCHEMA)
    # A required field left empty is named by its path; nothing is sent.
    error = page.evaluate("() => { try { window.form.get(); return null; } catch (e) { return e.message; } }")
    assert error == "origin.x: enter a number"
    page.get_by_label(re.compile(r"^mode")).select_option("fast")
    page.get_by_label(re.compile(r"^level")).fill("3")
    page.get_by_label(re.compile(r"^verbose")).check()
    page.get_by_role("button", name="Add to tags").click()
    page.locator("#form-under-test .array").first.locator("input").nth(1).fill("b")
    page.get_by_label("green").check()
    page.get_by_role("group", name=re.compile("origin")).get_by_label(re.compile(r"^x")).fill("5")
    page.get_by_role("button", name="Add to path").click()
    path_point = page.locator("#form-under-test .array").nth(1).locator("fieldset").first
    path_point.get_by_label(re.compile(r"^x")).fill("1")
    path_point.get_by_label(re.compile(r"^y")).fill("2")
    page.get_by_label(re.compile(r"^extra")).fill('{"deep": [1, {"k": null}]}')
    shot(page, "tools-form-shapes")
    assert page.evaluate("window.form.get()") == {
        "name": "ada", "mode": "fast", "level": 3, "verbose": True, "tags": ["a", "b"], "colors": ["green"],
        "origin": {"x": 5, "y": 0}, "path": [{"x": 1, "y": 2}], "extra": {"deep": [1, {"k": None}]},
    }
    # A wrong value is named by its path, not sent.
    page.get_by_label(re.compile(r"^extra")).fill("{oops")
    error = page.evaluate("() => { try { window.form.get(); return null; } catch (e) { return e.message; } }")
    assert error.startswith("extra: not valid JSON")


@pytest.mark.parametrize("color_scheme", ["dark"], indirect=True)
def test_dark_mode_is_readable(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "demo__add")
    field(page, "a").fill("2")
    field(page, "b").fill("40")
    page.get_by_role("button", name="Call").click()
    expect(page.get_by_label("Result")).to_contain_text("42")

    def luminance(css: str) -> float:
        r, g, b = (int(c) / 255 for c in re.findall(r"\d+", css)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    background = luminance(page.evaluate("getComputedStyle(document.body).backgroundColor"))
    text = luminance(page.evaluate("getComputedStyle(document.body).color"))
    result_text = luminance(page.get_by_label("Result").locator("pre").first.evaluate("e => getComputedStyle(e).color"))
    assert background < 0.15 and text > 0.7 and result_text > 0.7, "light text on a dark page"
    shot(page, "tools-demo-add-dark")


def test_resource_links_are_followed_and_embedded_resources_shown(page: Any, studio_server: Any, shot: Any) -> None:
    open_tool(page, studio_server, "everything__get-resource-links")
    page.get_by_role("button", name="Call").click()
    result = page.get_by_label("Result")
    # The kind label is upper-cased by CSS, hence the case-blind match.
    links = result.locator(".block").filter(has=page.locator(".block-kind", has_text=re.compile("^resource link$", re.I)))
    expect(links.first).to_be_visible()
    first = links.first
    uri = first.locator("code").first.inner_text()
    first.get_by_role("link").first.click()  # read through Studio (resources/read), shown in place
    expect(first.locator(".resource-target .block-kind")).to_contain_text(re.compile(f"resource {re.escape(uri)}", re.I))
    expect(first.locator(".resource-target pre, .resource-target img, .resource-target a")).not_to_have_count(0)
    shot(page, "tools-resource-links")

    open_tool(page, studio_server, "everything__get-resource-reference")
    page.get_by_role("button", name="Call").click()
    embedded = page.get_by_label("Result").locator(".block-kind", has_text=re.compile(r"^resource ", re.I))
    expect(embedded.first).to_be_visible()
