"""Forms and the application error: a refusal that names fields is shown beside them."""

from django import forms

from config.errors import ApplicationError


def form_add_refusal(form: forms.Form, error: ApplicationError) -> None:
    """Put a service's refusal on the form: beside the fields it names, else on top."""
    placed = False
    for field, problems in error.fields.items():
        if field in form.fields:
            for problem in problems:
                form.add_error(field, problem)
            placed = True
    if not placed:
        form.add_error(None, error.html())
