"""MkDocs hook: the README is the site's home page (written once, in the repository root)."""
import os
import re

from mkdocs.structure.files import File


def on_files(files, config):
    root = os.path.dirname(config["config_file_path"])
    files.append(File.generated(config, "index.md", abs_src_path=os.path.join(root, "README.md")))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    # The README links into docs/ from the repository root; the site's root is docs/.
    return re.sub(r"\]\(docs/", "](", markdown)
