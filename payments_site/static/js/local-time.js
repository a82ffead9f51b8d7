/* Every <time data-local-time datetime="…Z"> in the reader's own time zone, named
   ("Dec 6, 2026, 7:48 PM EST"). The server wrote the same moment in UTC, labelled, which
   stays as it is wherever this script cannot run. Loaded by the layout on every page. */
(function () {
  'use strict';

  var language = document.documentElement.getAttribute('data-locale') || undefined;
  var format;
  try {
    format = new Intl.DateTimeFormat(language, {
      year: 'numeric', month: 'short', day: 'numeric',
      hour: 'numeric', minute: '2-digit', timeZoneName: 'short'
    });
  } catch (error) {
    return; // an unknown language tag or no Intl: the UTC text is still right
  }

  function localize(root) {
    var times = root.querySelectorAll('time[data-local-time]');
    for (var i = 0; i < times.length; i++) {
      var element = times[i];
      var moment = new Date(element.getAttribute('datetime'));
      if (isNaN(moment.getTime())) continue;
      if (!element.title) element.title = element.textContent.trim();
      element.textContent = format.format(moment);
    }
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', function () { localize(document); });
  } else {
    localize(document);
  }
})();
