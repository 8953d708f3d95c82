"""The API's blueprint: flask-smorest's, with a query string read as strictly as a JSON body."""
from __future__ import annotations

import flask
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE, Schema
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict


def query_args(args: MultiDict) -> MultiDict:
    """The query parameters the API reads: all but those that ad links and browsers add to any URL (`utm_*`, the
    cache-buster `_`), which no route reads and none refuses."""
    return MultiDict([(key, value) for key, value in args.items(multi=True)
                      if key != "_" and not key.startswith("utm_")])


class StrictQueryParser(FlaskParser):
    """An unknown query parameter is a 422 naming it, as an unknown body field is: a misspelt filter (`?form=`) must
    not answer as if there were none."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def load_querystring(self, req: flask.Request, schema: Schema):
        """The query parameters the API reads (`query_args`)."""
        return self._makeproxy(query_args(req.args), schema)


class Blueprint(SmorestBlueprint):
    """A flask-smorest blueprint whose arguments are parsed by `StrictQueryParser`."""

    ARGUMENTS_PARSER = StrictQueryParser()
