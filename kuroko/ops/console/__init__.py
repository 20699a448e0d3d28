"""The desk console (`kuroko console`): Today, Waiting for a person, an item, search — in Japanese
and English, for viewers and operators — and the templates `kuroko report` freezes."""
