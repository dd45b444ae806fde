"""Action parameters: case-insensitive names, typed reads, one set of rules.

The ACI endpoint, the fetch actions and the dashboard's forms read parameters
through ``Params``, so a parameter means the same thing wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

_TRUE = frozenset({"true", "1", "yes", "on", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "n"})


class ParameterError(ValueError):
    """A parameter is missing or has a value the action cannot use."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class MissingParameter(ParameterError):
    def __init__(self, name: str, hint: str = "") -> None:
        super().__init__(name, f"The {name} parameter is required.{' ' + hint if hint else ''}")


class InvalidParameter(ParameterError):
    def __init__(self, name: str, value: str, expected: str) -> None:
        shown = value if len(value) <= 80 else value[:77] + "..."
        super().__init__(name, f"The {name} parameter must be {expected}, not {shown!r}.")
        self.value = value


class Params(Mapping[str, str]):
    """Parameters by name, case-insensitively; the first spelling seen is kept."""

    def __init__(self, items: Mapping[str, str] | None = None) -> None:
        self._values: dict[str, str] = {}
        self._names: dict[str, str] = {}
        for name, value in (items or {}).items():
            self.set(name, value)

    def set(self, name: str, value: str) -> None:
        key = name.lower()
        self._names.setdefault(key, name)
        self._values[key] = value

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names[key] for key in self._values)

    def __len__(self) -> int:
        return len(self._values)

    def as_dict(self) -> dict[str, str]:
        """Names as first spelled, for storing with the action."""
        return {self._names[key]: value for key, value in self._values.items()}

    def without(self, *names: str) -> Params:
        drop = {name.lower() for name in names}
        return Params({n: v for n, v in self.as_dict().items() if n.lower() not in drop})

    # Typed reads -------------------------------------------------------------

    def text(self, name: str, default: str | None = None, *, hint: str = "") -> str:
        value = self._values.get(name.lower(), "").strip()
        if value:
            return value
        if default is None:
            raise MissingParameter(name, hint)
        return default

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._values.get(name.lower(), "").strip()
        if not raw:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise InvalidParameter(name, raw, "true or false")

    def integer(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        raw = self._values.get(name.lower(), "").strip()
        if not raw:
            if default is None:
                raise MissingParameter(name)
            return default
        expected = "a whole number"
        if minimum is not None and maximum is not None:
            expected += f" from {minimum} to {maximum}"
        elif minimum is not None:
            expected += f" of at least {minimum}"
        elif maximum is not None:
            expected += f" of at most {maximum}"
        try:
            value = int(raw, 10)
        except ValueError:
            raise InvalidParameter(name, raw, expected) from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise InvalidParameter(name, raw, expected)
        return value

    def csv(self, name: str, *, required: bool = False, hint: str = "") -> list[str]:
        """A comma-separated list; empty items are dropped."""
        raw = self._values.get(name.lower(), "")
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if required and not items:
            raise MissingParameter(name, hint)
        return items

    def choice(self, name: str, choices: Mapping[str, str], default: str | None = None) -> str:
        """One of ``choices`` (keys lower-case); returns the mapped value."""
        raw = self._values.get(name.lower(), "").strip()
        if not raw:
            if default is None:
                raise MissingParameter(name)
            return default
        try:
            return choices[raw.lower()]
        except KeyError:
            raise InvalidParameter(name, raw, "one of " + ", ".join(choices)) from None
