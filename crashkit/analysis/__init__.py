"""Pure functions over the model, plus the ``analyze`` pipeline that ties readers together."""
