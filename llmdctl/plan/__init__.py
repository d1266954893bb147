"""The plan value (``stack``) and the frozen containers it is made of (``frozen``)."""
